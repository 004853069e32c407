//! StudyOn: a real-time collaboration server for online study groups.
//!
//! # Module map
//!
//! | module | what lives there |
//! |---|---|
//! | [`config`] | every setting: CLI flag, `STUDYON_*` env twin and default in one struct; validation |
//! | [`error`] | the one API error enum and its mapping to HTTP status + stable snake_case code |
//! | [`ids`] | id newtypes (`UserId`, `SessionId`, …) made by one macro so ids never mix |
//! | [`store`] | the `Store` trait and its SQLite and Postgres implementations |
//! | [`studies`] | the study domain: statuses, roles and capabilities, input rules, markdown |
//! | [`chat`] | the chat domain: rooms, messages, reactions, rules, mentions |
//! | [`tasks`] | tasks, posts and file metadata: types, input rules, live events in version order |
//! | [`storage`] | object storage (local directory, S3), upload spooling, sniffing, ranges |
//! | [`persist`] | the group-commit persistence actor for durable writes on live paths |
//! | [`auth`] | passwords (Argon2id), session tokens, input rules, login throttling |
//! | [`ratelimit`] | the token-bucket core: a pure function of (bucket, now); buckets per key |
//! | [`registry`] | keyed actors by key: kinds, leases, start, idle stop, supervision |
//! | [`live`] | live features, one folder each: socket family, keyed actor, frames |
//! | [`ws`] | live sockets: typed frames, the router to sockets, the shell, families, the local hub |
//! | [`http`] | routes, extractors, Origin (CSRF) check, OpenAPI document, static web UI |
//! | [`cluster`] | cluster mode: a Redis lease per actor key, node-to-node links, the cross-node router, shared limits |
//! | [`jobs`] | scheduled jobs: cron schedules, one run per fire across nodes (a lock), the job bodies |
//! | [`metrics`] | Prometheus recorder and metric names |
//! | [`server`] | wiring: build the state, run the HTTP server, graceful shutdown |
//!
//! The one rule for callers: keyed actors are addressed by key through
//! [`registry::Registry`], never by a held `Addr`, and their messages are serde types so the
//! cluster registry can carry them between nodes.

pub mod auth;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod persist;
pub mod ratelimit;
pub mod registry;
pub mod server;
pub mod storage;
pub mod store;
pub mod studies;
pub mod tasks;
pub mod ws;
