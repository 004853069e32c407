//! Markdown to safe HTML: pulldown-cmark renders, fenced code blocks are highlighted on the
//! server by syntect (as `hl-*` classes, coloured by [`highlight_css`]), and ammonia then keeps
//! only harmless tags and attributes (no scripts, event handlers, `javascript:`/`data:` URLs,
//! inline SVG or styles; classes only from our own `hl-`/`language-` vocabulary). Sanitizing
//! last means the highlighter's output is checked like everything else.

use std::borrow::Cow;
use std::sync::LazyLock;

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};
use syntect::html::{ClassStyle, ClassedHTMLGenerator, css_for_theme_with_class_style};
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

/// Classes carry this prefix so page styles and user classes cannot collide with them.
const CLASS_STYLE: ClassStyle = ClassStyle::SpacedPrefixed { prefix: "hl-" };
/// Code highlighted per document, in bytes: beyond it blocks stay plain, which bounds the
/// CPU one post can cost (the regex-based highlighter is the slow part of rendering).
const HIGHLIGHT_BUDGET: usize = 64 * 1024;
/// The light theme matching the web client.
const THEME: &str = "InspiredGitHub";

static SYNTAXES: LazyLock<SyntaxSet> = LazyLock::new(SyntaxSet::load_defaults_newlines);

/// The stylesheet for highlighted code (`GET /api/highlight.css`).
pub fn highlight_css() -> &'static str {
    static CSS: LazyLock<String> = LazyLock::new(|| {
        let themes = syntect::highlighting::ThemeSet::load_defaults();
        css_for_theme_with_class_style(&themes.themes[THEME], CLASS_STYLE).unwrap_or_default()
    });
    &CSS
}

/// A fence's language, reduced to characters a class name and a lookup need.
fn language(info: &str) -> String {
    info.split([' ', ',', '{'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '#' | '_' | '.'))
        .take(32)
        .collect()
}

/// One highlighted block, or `None` to leave it to the plain renderer.
fn highlight(lang: &str, code: &str) -> Option<String> {
    let syntax = SYNTAXES.find_syntax_by_token(lang)?;
    let mut generator = ClassedHTMLGenerator::new_with_class_style(syntax, &SYNTAXES, CLASS_STYLE);
    for line in LinesWithEndings::from(code) {
        generator
            .parse_html_for_line_which_includes_newline(line)
            .ok()?;
    }
    Some(format!(
        "<pre class=\"hl-code\"><code class=\"language-{lang}\">{}</code></pre>\n",
        generator.finalize()
    ))
}

/// Whether a URL points off this site (absolute, or scheme-relative).
fn external(url: &str) -> bool {
    url.starts_with("//")
        || url
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.contains('/'))
}

/// Images from other sites become links to them: loading them would tell that site who
/// reads the post and when (the page's CSP blocks them too). Our own files stay images.
fn external_images_as_links<'a>(events: Vec<Event<'a>>) -> Vec<Event<'a>> {
    let mut open = Vec::new();
    events
        .into_iter()
        .map(|ev| match ev {
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let out = external(&dest_url);
                open.push(out);
                if out {
                    Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    })
                } else {
                    Event::Start(Tag::Image {
                        link_type,
                        dest_url,
                        title,
                        id,
                    })
                }
            }
            Event::End(TagEnd::Image) => {
                if open.pop().unwrap_or(false) {
                    Event::End(TagEnd::Link)
                } else {
                    Event::End(TagEnd::Image)
                }
            }
            other => other,
        })
        .collect()
}

/// Replaces each fenced block with a known language by its highlighted HTML.
fn highlighted<'a>(parser: Parser<'a>) -> Vec<Event<'a>> {
    let mut out = Vec::new();
    let mut budget = HIGHLIGHT_BUDGET;
    let mut block: Option<(String, String)> = None;
    for ev in parser {
        match (&mut block, ev) {
            (None, Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))) => {
                block = Some((language(&info), String::new()));
                out.push(Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))));
            }
            (Some((_, code)), Event::Text(t)) => code.push_str(&t),
            (Some(_), Event::End(TagEnd::CodeBlock)) => {
                let (lang, code) = block.take().expect("inside a block");
                let html = (!lang.is_empty() && code.len() <= budget)
                    .then(|| highlight(&lang, &code))
                    .flatten();
                match html {
                    Some(h) => {
                        budget -= code.len();
                        out.pop(); // the Start pushed above
                        out.push(Event::Html(CowStr::from(h)));
                    }
                    None => {
                        out.push(Event::Text(CowStr::from(code)));
                        out.push(Event::End(TagEnd::CodeBlock));
                    }
                }
            }
            (_, ev) => out.push(ev),
        }
    }
    out
}

pub fn render(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(
        &mut raw,
        external_images_as_links(highlighted(Parser::new_ext(markdown, opts))).into_iter(),
    );
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .add_tag_attributes("code", ["class"])
        .add_tag_attributes("pre", ["class"])
        .add_tag_attributes("span", ["class"])
        .attribute_filter(|_, attr, value| {
            if attr != "class" {
                return Some(Cow::Borrowed(value));
            }
            let kept: Vec<&str> = value
                .split_ascii_whitespace()
                .filter(|c| c.starts_with("hl-") || c.starts_with("language-"))
                .collect();
            (!kept.is_empty()).then(|| Cow::Owned(kept.join(" ")))
        })
        .clean(&raw)
        .to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::render;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Arbitrary markdown (biased towards markup and HTML) never panics the renderer and
        /// never comes out with a script, an event handler or a `javascript:` URL.
        #[test]
        fn arbitrary_markdown_renders_inert(
            src in prop::collection::vec(
                prop_oneof![
                    "[ -~]{0,20}",
                    Just("<script>alert(1)</script>".to_string()),
                    Just("[x](javascript:alert(1))".to_string()),
                    Just("<img src=x onerror=alert(1)>".to_string()),
                    Just("![i](https://t.example/p.png)".to_string()),
                    Just("\n```rust\nfn f() {}\n```\n".to_string()),
                    Just("<svg onload=alert(1)>".to_string()),
                    Just("| a | b |\n|---|---|\n| 1 | 2 |\n".to_string()),
                    "\\PC{0,10}",
                ],
                0..12,
            ).prop_map(|parts| parts.concat())
        ) {
            let html = render(&src).to_ascii_lowercase();
            // Text is escaped, so every '<' left opens a tag the sanitizer kept.
            for tag in html.split('<').skip(1).map(|t| t.split('>').next().unwrap_or("")) {
                let name = tag.trim_start_matches('/').split_whitespace().next().unwrap_or("");
                prop_assert!(
                    !matches!(name, "script" | "svg" | "math" | "iframe" | "object" | "style" | "form"),
                    "tag {} in {}", name, html
                );
                for attr in tag.split_whitespace().skip(1) {
                    prop_assert!(!attr.starts_with("on"), "handler {} in {}", attr, html);
                    prop_assert!(!attr.starts_with("style"), "style {} in {}", attr, html);
                    if let Some(v) = attr.strip_prefix("href=").or_else(|| attr.strip_prefix("src=")) {
                        let v = v.trim_matches('"');
                        prop_assert!(
                            !v.starts_with("javascript:") && !v.starts_with("data:") && !v.starts_with("vbscript:"),
                            "url {} in {}", v, html
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn external_images_become_links_and_own_files_stay_images() {
        let h = render(
            "![chart](https://tracker.example/pixel.png) and ![own](/api/studies/1/files/2)",
        );
        assert!(!h.contains("<img src=\"https://"), "{h}");
        assert!(
            h.contains("<a href=\"https://tracker.example/pixel.png\""),
            "{h}"
        );
        assert!(h.contains(">chart</a>"), "{h}");
        assert!(h.contains("<img src=\"/api/studies/1/files/2\""), "{h}");
        let h = render("![x](//tracker.example/p.gif)");
        assert!(!h.contains("<img"), "{h}");
    }

    #[test]
    fn renders_markdown() {
        let h = render("# 알고리즘 스터디\n\n**bold** and `code`\n\n```rust\nfn main() {}\n```");
        assert!(h.contains("<h1>알고리즘 스터디</h1>"), "{h}");
        assert!(h.contains("<strong>bold</strong>"));
        assert!(h.contains("<code class=\"language-rust\">"), "{h}");
    }

    #[test]
    fn highlights_known_languages_only() {
        let h = render("```rust\nfn main() { let x = 1; }\n```\n\n```nosuchlang\nplain <b>\n```");
        assert!(
            h.contains("<pre class=\"hl-code\"><code class=\"language-rust\">"),
            "{h}"
        );
        assert!(h.contains("<span class=\"hl-"), "{h}");
        assert!(h.contains("hl-keyword"), "{h}");
        // An unknown language stays a plain, escaped block.
        assert!(
            h.contains("<code class=\"language-nosuchlang\">plain &lt;b&gt;"),
            "{h}"
        );
        assert!(super::highlight_css().contains(".hl-keyword"));
    }

    #[test]
    fn user_classes_outside_our_vocabulary_are_dropped() {
        let h = render("<span class=\"admin-badge hl-x\">a</span><span class=\"evil\">b</span>");
        assert!(h.contains("<span class=\"hl-x\">a</span>"), "{h}");
        assert!(h.contains("<span>b</span>"), "{h}");
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
            "```html\n<script>alert(1)</script>\n```",
            "```\"><script>alert(1)</script>\nx\n```",
            "<svg><use href=\"data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=\"/></svg>",
            "<img src=\"data:image/png;base64,iVBORw0KGgo=\">",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<form action=\"javascript:alert(1)\"><button>x</button></form>",
            "<object data=\"javascript:alert(1)\"></object><embed src=x>",
            "[x](vbscript:msgbox(1))",
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
                "data:image",
                "vbscript:",
                "<form",
                "<object",
                "<embed",
                "<math",
            ] {
                assert!(!out.contains(bad), "{input:?} -> {out:?} contains {bad}");
            }
        }
    }
}
