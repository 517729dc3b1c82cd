//! The storage limit: message documents of the server's shape (src/store/mongo/messages.rs,
//! with its two unique indexes) written straight into the same MongoDB with `insert_many`, in
//! batches no larger than the server's group commit (`messages.batch_max`), by a few concurrent
//! writers. What this sustains is the ceiling for persisted throughput. It writes into a
//! database of its own, dropped before and after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mongodb::bson::{self, Document, doc, oid::ObjectId};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, IndexModel};
use serde::Serialize;

const DATABASE: &str = "bench_limit";

#[derive(Debug, Clone, Serialize)]
pub struct StorageLimit {
    pub documents: u64,
    pub batch: usize,
    pub writers: usize,
    pub secs: f64,
    pub docs_per_sec: f64,
}

/// Writes `documents` messages of `content_len` characters spread over `conversations`
/// conversations, `batch` per `insert_many`, with `writers` concurrent writers. Stops early
/// (and reports what it managed) after `max_time`.
pub async fn measure(
    uri: &str,
    documents: u64,
    conversations: u64,
    content_len: usize,
    batch: usize,
    writers: usize,
    max_time: Duration,
) -> Result<StorageLimit> {
    let client = Client::with_uri_str(uri)
        .await
        .context("connecting to MongoDB")?;
    let db = client.database(DATABASE);
    db.drop().await.context("dropping the limit database")?;
    let coll: Collection<Document> = db.collection("messages");
    create_indexes(&coll).await?;

    let next = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let content: Arc<str> = Arc::from("x".repeat(content_len.max(1)));
    let deadline = Instant::now() + max_time;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers.max(1) {
        let (coll, next, written, content) =
            (coll.clone(), next.clone(), written.clone(), content.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch as u64, Ordering::Relaxed);
                if first >= documents || Instant::now() >= deadline {
                    return Ok::<_, anyhow::Error>(());
                }
                let last = (first + batch as u64).min(documents);
                let docs: Vec<Document> = (first..last)
                    .map(|n| message(n, conversations.max(1), &content))
                    .collect();
                coll.insert_many(&docs)
                    .ordered(false)
                    .await
                    .context("insert_many")?;
                written.fetch_add(last - first, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let documents = written.load(Ordering::Relaxed);
    db.drop().await.context("dropping the limit database")?;
    Ok(StorageLimit {
        documents,
        batch,
        writers,
        secs,
        docs_per_sec: documents as f64 / secs.max(1e-9),
    })
}

/// The same indexes as the server's `messages` collection.
async fn create_indexes(coll: &Collection<Document>) -> Result<()> {
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "conversation": 1, "seq": 1 })
            .options(IndexOptions::builder().unique(true).build())
            .build(),
    )
    .await?;
    coll.create_index(
        IndexModel::builder()
            .keys(doc! { "from": 1, "client_msg_id": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .partial_filter_expression(doc! { "client_msg_id": { "$exists": true } })
                    .build(),
            )
            .build(),
    )
    .await?;
    Ok(())
}

/// Message number `n`, with the fields the server stores.
fn message(n: u64, conversations: u64, content: &str) -> Document {
    let pair = n % conversations;
    let (low, high) = (2 * pair + 1, 2 * pair + 2);
    doc! {
        "_id": ObjectId::new(),
        "conversation": format!("u:{low}:{high}"),
        "seq": i64::try_from(n / conversations + 1).unwrap_or(i64::MAX),
        "from": i64::try_from(low).unwrap_or(i64::MAX),
        "to": high.to_string(),
        "type": crate::client::TEXT_TYPE as i32,
        "content": content,
        "client_msg_id": format!("limit-{n}"),
        "created_at": bson::DateTime::now(),
        "hidden_for": Vec::<i64>::new(),
    }
}
