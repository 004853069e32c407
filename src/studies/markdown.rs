//! Markdown to safe HTML: pulldown-cmark renders, ammonia keeps only harmless tags and
//! attributes (no scripts, event handlers, `javascript:`/`data:` URLs, or inline SVG).

use pulldown_cmark::{Options, Parser, html};

pub fn render(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut raw, Parser::new_ext(markdown, opts));
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .add_tag_attributes("code", ["class"])
        .clean(&raw)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn renders_markdown() {
        let h = render("# 알고리즘 스터디\n\n**bold** and `code`\n\n```rust\nfn main() {}\n```");
        assert!(h.contains("<h1>알고리즘 스터디</h1>"), "{h}");
        assert!(h.contains("<strong>bold</strong>"));
        assert!(h.contains("<code class=\"language-rust\">"), "{h}");
    }

    #[test]
    fn xss_comes_out_inert() {
        let corpus = [
            "<script>alert(1)</script>",
            "[x](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<img src=x onerror=alert(1)>",
            "<svg onload=alert(1)><circle/></svg>",
            "[d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "<iframe src=//evil.example></iframe>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
            "<<script>script>alert(1)<</script>/script>",
            "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
            "<p onclick=alert(1)>unclosed <b>tag",
        ];
        for input in corpus {
            let out = render(input).to_lowercase();
            for bad in [
                "<script",
                "javascript:",
                "onerror",
                "onload",
                "onclick",
                "<svg",
                "<iframe",
                "data:text",
                "style=",
            ] {
                assert!(!out.contains(bad), "{input:?} -> {out:?} contains {bad}");
            }
        }
    }
}
