//! chat-loadgen: drives chat-server under load and checks what it delivers.
//!
//! - [`server`]: spawning `chat-server` processes against shared backing services.
//! - [`client`]: HTTP (users, groups) and WebSocket clients speaking docs/protocol.md.
//! - [`ledger`]: the exactly-once, in-order delivery bookkeeping.
//! - [`peer`]: a simulated device (windowed or paced sends, reconnect and resume).
//! - [`relay`]: the bare relay, the transport ceiling the server is compared with.
//! - [`storage`]: the storage ceiling, documents written straight into MongoDB.
//! - [`gridfs`]: the upload ceiling, files written straight into the server's GridFS bucket.
//! - [`payload`]: the generated, reproducible bytes of the files the benchmark uploads.
//! - [`scenarios`], [`bench`]: the benchmark scenarios and the `bench` command.
//! - [`report`], [`doc`], [`plot`]: the JSON result, the Markdown report and its plots.
//! - [`redis_stats`], [`sys`]: Redis work per message, machine description and CPU use.

pub mod bench;
pub mod client;
pub mod doc;
pub mod gridfs;
pub mod ledger;
pub mod payload;
pub mod peer;
pub mod plot;
pub mod redis_stats;
pub mod relay;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod server_conf;
pub mod storage;
pub mod sys;
pub mod table;
