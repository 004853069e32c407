//! Integration tests: the real server on 127.0.0.1:0 against real SQLite and Postgres,
//! driven over HTTP and WebSocket. One test binary (modules below) to keep link time down.

mod api;
mod chat;
mod cluster;
mod common;
mod docs;
mod durability;
mod files;
mod hardening;
mod jobs;
mod store;
mod studies;
mod tasks;
mod turn;
mod video;
mod ws;
