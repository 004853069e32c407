//! Files: the object store conformance suite (local directory and S3 on a loopback test
//! server), uploads and downloads over HTTP on SQLite + local files and Postgres + S3, every
//! refused upload leaving storage and database unchanged, and an upload killed midway.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use studyon::server::RunningServer;
use studyon::storage::{self, ObjectStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use crate::durability::{free_port, spawn_server_with};
use crate::studies::{create_study, study_body};
use crate::tasks::{new_post, new_task, study_with_members};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Objects {
    Local,
    S3,
}

/// Pseudo-random bytes that are not valid text.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn open_objects(
    b: &Backend,
    objects: Objects,
    args: &[String],
) -> std::sync::Arc<dyn ObjectStore> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let settings = b.settings(&args);
    let o = storage::open(&settings).await.expect("object store");
    assert_eq!(
        o.kind(),
        if objects == Objects::S3 {
            "s3"
        } else {
            "local"
        }
    );
    o
}

async fn read_all(o: &dyn ObjectStore, key: &str, start: u64, end: u64) -> Vec<u8> {
    let mut out = Vec::new();
    o.get(key, start, end)
        .await
        .expect("get")
        .read_to_end(&mut out)
        .await
        .unwrap();
    out
}

/// The same checks on both object stores.
async fn conformance(objects: Objects) {
    let b = Backend::new(Db::Sqlite).await;
    let args = if objects == Objects::S3 {
        s3_args()
    } else {
        vec![]
    };
    let o = open_objects(&b, objects, &args).await;
    assert!(o.list().await.unwrap().is_empty(), "a fresh store is empty");

    let data = bytes(200_000, 7);
    let file = b.dir.path().join("spool");
    std::fs::write(&file, &data).unwrap();
    let key = storage::new_key();
    o.put_file(&key, &file, data.len() as u64, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(read_all(&*o, &key, 0, data.len() as u64 - 1).await, data);
    assert_eq!(read_all(&*o, &key, 10, 19).await, &data[10..20]);
    assert_eq!(
        read_all(&*o, &key, 199_990, 199_999).await,
        &data[199_990..]
    );
    let listed = o.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].key.as_str(), listed[0].size),
        (key.as_str(), data.len() as u64)
    );
    assert!(
        listed[0].modified > studyon::store::now_millis() - 600_000,
        "{listed:?}"
    );

    // Missing and malformed keys are not found; they never reach a path or URL.
    assert!(matches!(
        o.get(&storage::new_key(), 0, 0).await,
        Err(storage::StorageError::NotFound)
    ));
    for bad in ["../../etc/passwd", "ABCDEF", ""] {
        assert!(
            matches!(o.get(bad, 0, 0).await, Err(storage::StorageError::NotFound)),
            "{bad}"
        );
    }
    o.delete(&key).await.unwrap();
    o.delete(&key).await.unwrap(); // idempotent
    assert!(matches!(
        o.get(&key, 0, 0).await,
        Err(storage::StorageError::NotFound)
    ));
    assert!(o.list().await.unwrap().is_empty());

    // Listing pages in key order, after a given key, so the sweep holds one page at a time.
    let mut keys: Vec<String> = (0..5).map(|_| storage::new_key()).collect();
    for k in &keys {
        std::fs::write(&file, k.as_bytes()).unwrap();
        o.put_file(k, &file, 32, "text/plain").await.unwrap();
    }
    keys.sort();
    let names = |v: Vec<storage::ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
    assert_eq!(names(o.list_after(None, 2).await.unwrap()), keys[..2]);
    assert_eq!(
        names(o.list_after(Some(&keys[1]), 2).await.unwrap()),
        keys[2..4]
    );
    assert_eq!(
        names(o.list_after(Some(&keys[3]), 10).await.unwrap()),
        keys[4..]
    );
    assert!(o.list_after(Some(&keys[4]), 10).await.unwrap().is_empty());
    assert_eq!(names(o.list().await.unwrap()), keys);
    for k in &keys {
        o.delete(k).await.unwrap();
    }

    // The orphan sweep removes old objects no row names and keeps the rest.
    let store = studyon::store::open(&b.settings(&[])).await.unwrap();
    store.migrate().await.unwrap();
    std::fs::write(&file, b"orphan").unwrap();
    let orphan = storage::new_key();
    o.put_file(&orphan, &file, 6, "text/plain").await.unwrap();
    let now = studyon::store::now_millis();
    assert_eq!(
        storage::sweep_orphans(&*store, &*o, now).await.unwrap(),
        0,
        "young objects are kept"
    );
    let later = now + 2 * 3600 * 1000;
    assert_eq!(
        storage::sweep_orphans(&*store, &*o, later).await.unwrap(),
        1
    );
    assert!(o.list().await.unwrap().is_empty());
    store.close().await;
}

#[actix_rt::test]
async fn object_store_conformance_local() {
    conformance(Objects::Local).await;
}

#[actix_rt::test]
async fn object_store_conformance_s3() {
    conformance(Objects::S3).await;
}

/// The two deployments the issue names: SQLite + local files and Postgres + S3.
async fn deployment(
    objects: Objects,
    extra: &[&str],
) -> (Backend, RunningServer, std::sync::Arc<dyn ObjectStore>) {
    let db = if objects == Objects::S3 {
        Db::Postgres
    } else {
        Db::Sqlite
    };
    let b = Backend::new(db).await;
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    if objects == Objects::S3 {
        args.extend(s3_args());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = start(&b, &argv).await;
    let o = s.state.objects.clone();
    (b, s, o)
}

fn upload_path(study: i64, post: i64, name: &str) -> String {
    format!(
        "/api/studies/{study}/posts/{post}/attachments?name={}",
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    )
}

/// (filename, body, declared type, who, status, code) of an upload that must be refused.
type Refusal<'a> = (&'a str, Vec<u8>, &'a str, &'a Session, u16, &'a str);

/// Everything a refused request could have touched.
async fn snapshot(
    s: &RunningServer,
    o: &dyn ObjectStore,
    study: i64,
    post: i64,
    who: &Session,
) -> (Vec<String>, Value, usize) {
    let keys = o.list().await.unwrap().into_iter().map(|i| i.key).collect();
    let (_, p) = get(
        s,
        &format!("/api/studies/{study}/posts/{post}"),
        Some(&who.cookie),
    )
    .await;
    let spooled = std::fs::read_dir(&s.state.spool_dir).unwrap().count();
    (keys, p["post"]["attachments"].clone(), spooled)
}

async fn uploads_and_downloads(objects: Objects) {
    // Small limits so the refusals are cheap: 1 MiB a file, 2.5 MiB a study.
    let (b, s, o) = deployment(
        objects,
        &[
            "--upload-max-bytes",
            "1048576",
            "--study-quota-bytes",
            "2621440",
        ],
    )
    .await;
    let (_, ready) = get(&s, "/readyz", None).await;
    assert_eq!(
        ready["storage"],
        if objects == Objects::S3 {
            "s3"
        } else {
            "local"
        }
    );
    let [leader, author, member, outsider] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&author, &member]).await;
    let task = new_task(&s, id, &author, json!({ "title": "files" })).await["id"]
        .as_i64()
        .unwrap();
    let pid = new_post(&s, id, task, &author, "with files", "see attached").await["id"]
        .as_i64()
        .unwrap();

    // Upload; the bytes come back whole, with their hash, sniffed type and a safe download.
    let data = bytes(300_000, 3);
    let (st, f) = post_bytes(
        &s,
        &upload_path(id, pid, "노트 \"1\".bin"),
        data.clone(),
        "application/octet-stream",
        Some(&author.cookie),
    )
    .await;
    assert_eq!(st, 201, "{f}");
    let f = f["file"].clone();
    assert_eq!(f["size"], 300_000);
    assert_eq!(
        f["name"], "노트 _1_.bin",
        "quotes are replaced in the kept name"
    );
    assert_eq!(f["sha256"], hex::encode(Sha256::digest(&data)));
    assert_eq!(f["content_type"], "application/octet-stream");
    let url = f["url"].as_str().unwrap().to_string();
    // Attaching is not editing: the post keeps its updated_at.
    let (_, p) = get(
        &s,
        &format!("/api/studies/{id}/posts/{pid}"),
        Some(&member.cookie),
    )
    .await;
    assert_eq!(p["post"]["updated_at"], p["post"]["created_at"]);
    // Clients learn the limits before sending.
    let (_, l) = get(&s, "/api/limits", Some(&member.cookie)).await;
    assert_eq!(
        (
            l["upload_max_bytes"].as_i64(),
            l["study_quota_bytes"].as_i64()
        ),
        (Some(1_048_576), Some(2_621_440))
    );
    let (st, h, got) = get_raw(&s, &url, Some(&member.cookie), &[]).await;
    assert_eq!(st, 200);
    assert_eq!(got, data);
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"__ _1_.bin\"; filename*=UTF-8''%EB%85%B8%ED%8A%B8%20_1_.bin"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-length"], "300000");
    let etag = h["etag"].clone();
    assert_eq!(etag, format!("\"{}\"", f["sha256"].as_str().unwrap()));

    // HEAD: the same headers and length, no body.
    let mut r = client()
        .head(format!("{}{url}", s.url()))
        .insert_header(("Cookie", member.cookie.clone()))
        .insert_header(("Range", "bytes=0-99"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let h = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(h("content-length").as_deref(), Some("100"));
    assert_eq!(h("content-range").as_deref(), Some("bytes 0-99/300000"));
    assert_eq!(h("etag"), Some(etag.clone()));
    assert!(r.body().await.unwrap().is_empty());
    let r = client()
        .head(format!("{}{url}", s.url()))
        .insert_header(("Cookie", outsider.cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Ranges: a slice, a suffix, past the end; a changed validator gets the whole file.
    let (st, h, got) = get_raw(
        &s,
        &url,
        Some(&member.cookie),
        &[("Range", "bytes=100-199")],
    )
    .await;
    assert_eq!((st, got.as_slice()), (206, &data[100..200]));
    assert_eq!(h["content-range"], "bytes 100-199/300000");
    let (st, _, got) = get_raw(&s, &url, Some(&member.cookie), &[("Range", "bytes=-10")]).await;
    assert_eq!((st, got.as_slice()), (206, &data[299_990..]));
    let (st, h, _) = get_raw(
        &s,
        &url,
        Some(&member.cookie),
        &[("Range", "bytes=300000-")],
    )
    .await;
    assert_eq!(st, 416);
    assert_eq!(h["content-range"], "bytes */300000");
    let (st, _, got) = get_raw(
        &s,
        &url,
        Some(&member.cookie),
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    )
    .await;
    assert_eq!((st, got.len()), (200, 300_000));
    let (st, _, got) = get_raw(
        &s,
        &url,
        Some(&member.cookie),
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    )
    .await;
    assert_eq!((st, got.as_slice()), (206, &data[..10]));
    let (st, _, _) = get_raw(&s, &url, Some(&member.cookie), &[("If-None-Match", &etag)]).await;
    assert_eq!(st, 304);

    // The type is what the bytes say, not what the client claims.
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &bytes(100, 5)].concat();
    let (st, f2) = post_bytes(
        &s,
        &upload_path(id, pid, "pic"),
        png,
        "application/octet-stream",
        Some(&author.cookie),
    )
    .await;
    assert_eq!(
        (st, f2["file"]["content_type"].as_str()),
        (201, Some("image/png"))
    );
    let (st, f3) = post_bytes(
        &s,
        &upload_path(id, pid, "page.html"),
        b"<script>alert(1)</script>".to_vec(),
        "text/html",
        Some(&author.cookie),
    )
    .await;
    assert_eq!(
        (st, f3["file"]["content_type"].as_str()),
        (201, Some("text/plain; charset=utf-8"))
    );

    // Refusals: each a 4xx with a stable code, storage and database untouched.
    let before = snapshot(&s, &*o, id, pid, &author).await;
    let big = bytes(1_048_577, 9);
    let cases: Vec<Refusal> = vec![
        (
            "big.bin",
            big.clone(),
            "application/octet-stream",
            &author,
            413,
            "payload_too_large",
        ),
        (
            "../../etc/passwd",
            bytes(10, 1),
            "application/octet-stream",
            &author,
            400,
            "invalid_filename",
        ),
        (
            "..\\boot.ini",
            bytes(10, 1),
            "application/octet-stream",
            &author,
            400,
            "invalid_filename",
        ),
        (
            "",
            bytes(10, 1),
            "application/octet-stream",
            &author,
            400,
            "invalid_filename",
        ),
        (
            "empty.txt",
            vec![],
            "text/plain",
            &author,
            400,
            "empty_file",
        ),
        (
            "fake.png",
            b"%PDF-1.7 not a png".to_vec(),
            "image/png",
            &author,
            415,
            "content_type_mismatch",
        ),
        (
            "fake.pdf",
            bytes(100, 2),
            "application/pdf",
            &author,
            415,
            "content_type_mismatch",
        ),
        (
            "notes.txt",
            bytes(100, 2),
            "text/plain",
            &author,
            415,
            "content_type_mismatch",
        ),
        (
            "theirs.bin",
            bytes(10, 1),
            "application/octet-stream",
            &member,
            403,
            "not_author",
        ),
        (
            "outsider.bin",
            bytes(10, 1),
            "application/octet-stream",
            &outsider,
            404,
            "not_found",
        ),
        // An outsider learns nothing else first, not even that the name or size is bad.
        (
            "../x",
            bytes(10, 1),
            "application/octet-stream",
            &outsider,
            404,
            "not_found",
        ),
        (
            "big.bin",
            big.clone(),
            "application/octet-stream",
            &outsider,
            404,
            "not_found",
        ),
    ];
    for (name, body, ct, who, status, code) in cases {
        let (st, e) =
            post_bytes(&s, &upload_path(id, pid, name), body, ct, Some(&who.cookie)).await;
        assert_eq!((st, e["error"].as_str()), (status, Some(code)), "{name:?}");
        assert_eq!(
            snapshot(&s, &*o, id, pid, &author).await,
            before,
            "{name:?} changed something"
        );
    }
    // Without a Content-Length the limit is enforced while streaming.
    let chunks = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let mut resp = client()
        .post(format!(
            "{}{}",
            s.url(),
            upload_path(id, pid, "chunked.bin")
        ))
        .insert_header(("Origin", s.url()))
        .insert_header(("Cookie", author.cookie.clone()))
        .insert_header(("Content-Type", "application/octet-stream"))
        .send_stream(chunks)
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"], "payload_too_large");
    assert_eq!(snapshot(&s, &*o, id, pid, &author).await, before);

    // Downloads: members only; a file id under another study is not found.
    assert_eq!(get_raw(&s, &url, Some(&outsider.cookie), &[]).await.0, 404);
    assert_eq!(get_raw(&s, &url, None, &[]).await.0, 401);
    let other = create_study(
        &s,
        &outsider.cookie,
        study_body("Other", &[], 5, "2027-02-01"),
    )
    .await;
    let fid = f["id"].as_i64().unwrap();
    let (st, _, _) = get_raw(
        &s,
        &format!("/api/studies/{other}/files/{fid}"),
        Some(&outsider.cookie),
        &[],
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(
        delete(
            &s,
            &format!("/api/studies/{other}/files/{fid}"),
            Some(&outsider.cookie)
        )
        .await
        .0,
        404
    );
    let (st, e) = post_bytes(
        &s,
        &upload_path(other, pid, "x.bin"),
        bytes(10, 1),
        "application/octet-stream",
        Some(&outsider.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (404, Some("not_found")));
    assert_eq!(snapshot(&s, &*o, id, pid, &author).await, before);

    // Quota: 300 KB + two files of ~1 MiB fit in 2.5 MiB, a third does not.
    let mb = bytes(1_000_000, 11);
    for n in 0..2 {
        let (st, e) = post_bytes(
            &s,
            &upload_path(id, pid, &format!("mb{n}.bin")),
            mb.clone(),
            "application/octet-stream",
            Some(&author.cookie),
        )
        .await;
        assert_eq!(st, 201, "{e}");
    }
    let full = snapshot(&s, &*o, id, pid, &author).await;
    let (st, e) = post_bytes(
        &s,
        &upload_path(id, pid, "mb2.bin"),
        mb.clone(),
        "application/octet-stream",
        Some(&author.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (413, Some("quota_exceeded")));
    assert_eq!(snapshot(&s, &*o, id, pid, &author).await, full);
    // Operators see uploads by outcome.
    let m = metrics_text(&s).await;
    assert!(
        m.contains("studyon_uploads_total{result=\"quota_exceeded\"}"),
        "{m}"
    );
    assert!(
        m.contains("studyon_uploads_total{result=\"stored\"}"),
        "{m}"
    );

    // Deleting a file gives its bytes back; the leader may delete anyone's file.
    let first_mb = full
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "mb0.bin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, e) = delete(
        &s,
        &format!("/api/studies/{id}/files/{first_mb}"),
        Some(&member.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (403, Some("not_author")));
    assert_eq!(
        delete(
            &s,
            &format!("/api/studies/{id}/files/{first_mb}"),
            Some(&leader.cookie)
        )
        .await
        .0,
        204
    );
    assert_eq!(o.list().await.unwrap().len(), full.0.len() - 1);
    let (st, e) = post_bytes(
        &s,
        &upload_path(id, pid, "mb2.bin"),
        mb,
        "application/octet-stream",
        Some(&author.cookie),
    )
    .await;
    assert_eq!(st, 201, "{e}");

    // At most 10 attachments a post.
    let p2 = new_post(&s, id, task, &author, "many", "").await["id"]
        .as_i64()
        .unwrap();
    for n in 0..10 {
        let (st, e) = post_bytes(
            &s,
            &upload_path(id, p2, &format!("{n}.txt")),
            format!("note {n}").into_bytes(),
            "text/plain",
            Some(&author.cookie),
        )
        .await;
        assert_eq!(st, 201, "{e}");
    }
    let (st, e) = post_bytes(
        &s,
        &upload_path(id, p2, "11.txt"),
        b"one more".to_vec(),
        "text/plain",
        Some(&author.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (409, Some("attachment_limit")));
    let (_, l) = get(
        &s,
        &format!("/api/studies/{id}/tasks/{task}/posts"),
        Some(&member.cookie),
    )
    .await;
    assert_eq!(l["items"][0]["attachment_count"], 10);

    // The recruiting post's files: the leader attaches, members see and download them.
    let (st, e) = post_bytes(
        &s,
        &format!("/api/studies/{id}/attachments?name=plan.pdf"),
        b"%PDF-1.4 plan".to_vec(),
        "application/pdf",
        Some(&author.cookie),
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (403, Some("not_author")));
    let (st, e) = post_bytes(
        &s,
        &format!("/api/studies/{id}/attachments?name=plan.pdf"),
        b"%PDF-1.4 plan".to_vec(),
        "application/pdf",
        Some(&leader.cookie),
    )
    .await;
    assert_eq!(st, 201, "{e}");
    let (_, d) = get(&s, &format!("/api/studies/{id}"), Some(&member.cookie)).await;
    assert_eq!(d["study"]["attachments"][0]["name"], "plan.pdf");
    let (_, d) = get(&s, &format!("/api/studies/{id}"), Some(&outsider.cookie)).await;
    assert_eq!(d["study"]["attachments"], json!([]));
    let (st, _, got) = get_raw(
        &s,
        e["file"]["url"].as_str().unwrap(),
        Some(&member.cookie),
        &[],
    )
    .await;
    assert_eq!((st, got.as_slice()), (200, b"%PDF-1.4 plan".as_slice()));

    // Deleting a post, then the task, then the study removes every object with its row.
    let count = |v: &Value| v.as_array().map_or(0, |a| a.len());
    let in_p2 = count(&snapshot(&s, &*o, id, p2, &author).await.1);
    let objects_before = o.list().await.unwrap().len();
    assert_eq!(
        delete(
            &s,
            &format!("/api/studies/{id}/posts/{p2}"),
            Some(&leader.cookie)
        )
        .await
        .0,
        204
    );
    assert_eq!(o.list().await.unwrap().len(), objects_before - in_p2);
    assert_eq!(
        delete(
            &s,
            &format!("/api/studies/{id}/tasks/{task}"),
            Some(&author.cookie)
        )
        .await
        .0,
        204
    );
    assert_eq!(
        o.list().await.unwrap().len(),
        1,
        "only the recruiting post's file is left"
    );
    assert_eq!(
        delete(&s, &format!("/api/studies/{id}"), Some(&member.cookie))
            .await
            .0,
        404
    );
    assert_eq!(
        delete(&s, &format!("/api/studies/{id}"), Some(&leader.cookie))
            .await
            .0,
        204
    );
    assert!(o.list().await.unwrap().is_empty());
    assert_eq!(
        get(&s, &format!("/api/studies/{id}"), Some(&leader.cookie))
            .await
            .0,
        404
    );
    s.shutdown().await;
    b.drop_db().await;
}

#[actix_rt::test]
async fn uploads_and_downloads_sqlite_local() {
    uploads_and_downloads(Objects::Local).await;
}

#[actix_rt::test]
async fn uploads_and_downloads_postgres_s3() {
    uploads_and_downloads(Objects::S3).await;
}

/// `kill -9` in the middle of an upload: after a restart no row points at a missing object
/// and nothing half-written is left; an upload acknowledged just before the kill is whole.
async fn upload_killed_midway(objects: Objects) {
    let b = Backend::new(if objects == Objects::S3 {
        Db::Postgres
    } else {
        Db::Sqlite
    })
    .await;
    let args: Vec<String> = if objects == Objects::S3 {
        s3_args()
    } else {
        vec![]
    };
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    // The test's own handle on the same object store, to list what is there.
    let store = open_objects(&b, objects, &args).await;
    let port = free_port();
    let mut child = spawn_server_with(&b, port, &extra).await;
    let s_url = format!("http://127.0.0.1:{port}");
    // The HTTP helpers want a RunningServer; drive this one by hand.
    let signup = |id: String| {
        let s_url = s_url.clone();
        async move {
            let mut r = client()
                .post(format!("{s_url}/api/auth/signup"))
                .insert_header(("Origin", s_url.clone()))
                .send_json(
                    &json!({ "login_id": id, "display_name": id, "password": "long enough pw" }),
                )
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let _ = r.body().await;
            session_cookie(r.headers()).unwrap()
        }
    };
    let cookie = signup(unique("kill")).await;
    let call = |method: &str, path: &str, body: Value| {
        let req = client()
            .request(method.parse().unwrap(), format!("{s_url}{path}"))
            .insert_header(("Origin", s_url.clone()))
            .insert_header(("Cookie", cookie.clone()));
        async move {
            let mut r = req.send_json(&body).await.unwrap();
            let v: Value = r.json().limit(1 << 20).await.unwrap_or(Value::Null);
            (r.status().as_u16(), v)
        }
    };
    let (_, st) = call(
        "POST",
        "/api/studies",
        study_body("Kill", &[], 5, "2027-02-01"),
    )
    .await;
    let id = st["study"]["id"].as_i64().unwrap();
    let (_, t) = call(
        "POST",
        &format!("/api/studies/{id}/tasks"),
        json!({ "title": "t" }),
    )
    .await;
    let (_, p) = call(
        "POST",
        &format!("/api/studies/{id}/tasks/{}/posts", t["task"]["id"]),
        json!({ "title": "p", "body": "" }),
    )
    .await;
    let pid = p["post"]["id"].as_i64().unwrap();

    // One upload acknowledged.
    let kept = bytes(100_000, 21);
    let mut r = client()
        .post(format!("{s_url}{}", upload_path(id, pid, "kept.bin")))
        .insert_header(("Origin", s_url.clone()))
        .insert_header(("Cookie", cookie.clone()))
        .send_body(kept.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let kept_file: Value = r.json().await.unwrap();

    // One cut off: 8 MiB announced, 3 MiB sent, then the server is killed.
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {s_url}\r\nCookie: {cookie}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        upload_path(id, pid, "cut.bin"),
        8 << 20
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&bytes(3 << 20, 22)).await.unwrap();
    let spool = b.dir.path().join("tmp");
    let mut spooling = false;
    for _ in 0..100 {
        let size: u64 = std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        if size > 0 {
            spooling = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(spooling, "the upload never reached the spool");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    drop(sock);

    let mut child = spawn_server_with(&b, port, &extra).await;
    let (st, p) = call(
        "GET",
        &format!("/api/studies/{id}/posts/{pid}"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 200);
    let files = p["post"]["attachments"].as_array().unwrap().clone();
    assert_eq!(
        files.len(),
        1,
        "only the acknowledged upload has a row: {files:?}"
    );
    // Every row's object is there and whole.
    for f in &files {
        let mut r = client()
            .get(format!("{s_url}{}", f["url"].as_str().unwrap()))
            .insert_header(("Cookie", cookie.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.body().limit(1 << 20).await.unwrap().as_ref(),
            kept.as_slice()
        );
    }
    assert_eq!(files[0]["id"], kept_file["file"]["id"]);
    // Nothing half-written: the spool is empty and the only object is the kept one.
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let stored = store.list().await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].size, kept.len() as u64);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    b.drop_db().await;
}

#[actix_rt::test]
async fn upload_killed_midway_sqlite_local() {
    upload_killed_midway(Objects::Local).await;
}

#[actix_rt::test]
async fn upload_killed_midway_postgres_s3() {
    upload_killed_midway(Objects::S3).await;
}

/// Uploads racing for the last of a study's quota: exactly as many are stored as fit, the
/// rest get quota_exceeded, and the quota counter matches the stored files.
async fn uploads_race_for_the_quota(objects: Objects) {
    // 1 MiB quota; five 300 kB uploads at once: three fit.
    let (b, s, o) = deployment(
        objects,
        &[
            "--upload-max-bytes",
            "1048576",
            "--study-quota-bytes",
            "1048576",
            // Five at once from one author: the race is for the quota, not for slots.
            "--uploads-per-user",
            "8",
        ],
    )
    .await;
    let [leader, author] = signups(&s).await;
    let id = study_with_members(&s, &leader, &[&author]).await;
    let task = new_task(&s, id, &author, json!({ "title": "race" })).await["id"]
        .as_i64()
        .unwrap();
    let mut posts = Vec::new();
    for n in 0..5 {
        posts.push(
            new_post(&s, id, task, &author, &format!("p{n}"), "").await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let uploads = posts.iter().enumerate().map(|(n, pid)| {
        let path = upload_path(id, *pid, &format!("{n}.bin"));
        let (s, cookie) = (&s, author.cookie.clone());
        async move {
            post_bytes(
                s,
                &path,
                bytes(300_000, n as u64 + 1),
                "application/octet-stream",
                Some(&cookie),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(uploads).await;
    let stored = results.iter().filter(|(st, _)| *st == 201).count();
    let refused = results
        .iter()
        .filter(|(st, e)| *st == 413 && e["error"] == "quota_exceeded")
        .count();
    assert_eq!((stored, refused), (3, 2), "{results:?}");
    assert_eq!(
        o.list().await.unwrap().len(),
        3,
        "refused uploads leave no object"
    );
    // Deleting one frees exactly its bytes.
    let fid = results.iter().find(|(st, _)| *st == 201).unwrap().1["file"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        delete(
            &s,
            &format!("/api/studies/{id}/files/{fid}"),
            Some(&author.cookie)
        )
        .await
        .0,
        204
    );
    let (st, e) = post_bytes(
        &s,
        &upload_path(id, posts[0], "again.bin"),
        bytes(300_000, 9),
        "application/octet-stream",
        Some(&author.cookie),
    )
    .await;
    assert_eq!(st, 201, "{e}");
    s.shutdown().await;
    b.drop_db().await;
}

#[actix_rt::test]
async fn uploads_race_for_the_quota_sqlite_local() {
    uploads_race_for_the_quota(Objects::Local).await;
}

#[actix_rt::test]
async fn uploads_race_for_the_quota_postgres_s3() {
    uploads_race_for_the_quota(Objects::S3).await;
}
