//! Scenario 6: uploads (`POST /files`, multipart/form-data, stored in GridFS).
//!
//! - Throughput: N files of one size (1 MiB at full size) uploaded by a few clients, each a user
//!   of its own, then the same bytes written straight into the server's GridFS bucket by as
//!   many writers ([`crate::gridfs`]): upload MiB/s ÷ raw MiB/s, round after round on one server
//!   process, with the files of each side deleted before the other side writes.
//! - Memory: C clients upload one file each (20 × 20 MiB at full size), all at once, to a fresh
//!   server process: its RSS after the clients' first requests (idle) and the highest RSS
//!   sampled every 50 ms meanwhile. The server streams an upload to the store a chunk at a
//!   time, so peak − idle should stay far below the bytes in flight (target < 100 MB); the
//!   clients stream their bodies too, generating each piece as it is sent.
//!
//! Every upload is checked: the size and sha256 the server answers are the file's, and each
//! file downloads (`GET /files/{id}`, by its owner) with the same sha256. A mismatch or a
//! refused upload fails the scenario.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::client::{Http, UploadedFile, User};
use crate::gridfs::RawBucket;
use crate::payload::{Payload, sha256_hex};
use crate::report::{Report, Row, Spread, UploadMemoryRound, UploadRound, mib_per_sec, size};
use crate::scenarios::{Ctx, UploadSizes, progress};
use crate::server::ServerProcess;
use crate::server_conf;
use crate::sys::PeakRss;

const SCENARIO: &str = "uploads";
/// Let a fresh process settle before its idle RSS is read.
const QUIET: Duration = Duration::from_secs(2);
/// How often the server's RSS is sampled while the clients upload.
const RSS_EVERY: Duration = Duration::from_millis(50);
/// The pieces a streamed upload body is generated in.
const PIECE: usize = 64 * 1024;
/// Downloads checked at once.
const CHECKS_AT_ONCE: usize = 4;
/// The memory target: peak − idle RSS, in MB.
const GROWTH_TARGET_MB: f64 = 100.0;
/// The store the raw writes measure, set for the scenario's servers whatever the shipped
/// configuration says.
const STORE_ENV: (&str, &str) = ("CHAT__FILES__STORE", "mongodb");
/// Seeds of the memory rounds' files, apart from the throughput files' (0..N).
const MEMORY_SEEDS: u64 = 1 << 32;

pub async fn run(ctx: &Ctx, report: &mut Report) -> Result<()> {
    let sizes = &ctx.sizes.uploads;
    check_limits(sizes)?;
    if ctx.users.len() < sizes.clients.max(sizes.memory_clients) {
        bail!("the uploads scenario needs {} users", sizes.users());
    }
    throughput(ctx, report, sizes).await?;
    memory(ctx, report, sizes).await
}

/// The shipped `files.max_bytes`, quota and file count must let every upload through (each
/// client has one upload in progress at a time, under `files.max_uploads_in_flight_per_user`):
/// a refusal would be an error of the benchmark, not a measurement.
fn check_limits(sizes: &UploadSizes) -> Result<()> {
    let files = &server_conf::shipped()?.files;
    let largest = sizes.file_bytes.max(sizes.memory_file_bytes);
    if largest > files.max_bytes.get() {
        bail!(
            "files of {largest} bytes are over files.max_bytes ({})",
            files.max_bytes
        );
    }
    // Each round's files are deleted before the next round.
    let per_client = sizes.files.div_ceil(sizes.clients.max(1)) as u64 * sizes.file_bytes;
    let per_user = per_client.max(sizes.memory_file_bytes);
    if per_user > files.quota_bytes_per_user.get() {
        bail!(
            "a client uploads {per_user} bytes per round, over files.quota_bytes_per_user ({})",
            files.quota_bytes_per_user
        );
    }
    let per_client_files = sizes.files.div_ceil(sizes.clients.max(1)) as u64;
    if per_client_files > files.max_files_per_user.get() {
        bail!(
            "a client uploads {per_client_files} files per round, over files.max_files_per_user \
             ({})",
            files.max_files_per_user
        );
    }
    Ok(())
}

async fn spawn_server(ctx: &Ctx) -> Result<ServerProcess> {
    let env = [(STORE_ENV.0.to_owned(), STORE_ENV.1.to_owned())];
    ServerProcess::spawn(&ctx.server_bin, &ctx.services, &env).await
}

/// One upload by one client.
struct Uploaded<'a> {
    owner: &'a User,
    file: UploadedFile,
    sha256: String,
}

/// Uploads `files` (with their sha256) through `POST /files`, the clients taking the next file
/// as each finishes one; returns the seconds it took and the uploads, checked against what the
/// server answered.
async fn upload_files<'a>(
    http: &Http,
    clients: &'a [User],
    files: &[(Bytes, String)],
    what: &str,
) -> Result<(f64, Vec<Uploaded<'a>>)> {
    let next = AtomicUsize::new(0);
    let bar = progress(files.len() as u64, what);
    let start = Instant::now();
    let per_client = futures_util::future::try_join_all(clients.iter().map(|owner| {
        let (next, bar) = (&next, &bar);
        async move {
            let mut done = Vec::new();
            while let Some((bytes, sha256)) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                let name = format!("bench-{}.bin", done.len());
                let body = reqwest::Body::from(bytes.clone());
                let file = http.upload(owner, &name, body, bytes.len() as u64).await?;
                check_answer(&file, bytes.len() as u64, sha256)?;
                bar.inc(1);
                done.push(Uploaded {
                    owner,
                    file,
                    sha256: sha256.clone(),
                });
            }
            Ok::<_, anyhow::Error>(done)
        }
    }))
    .await?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok((secs, per_client.into_iter().flatten().collect()))
}

/// The server's answer to an upload names the bytes sent.
fn check_answer(file: &UploadedFile, len: u64, sha256: &str) -> Result<()> {
    if file.size != len {
        bail!(
            "upload {}: the server stored {} bytes of {len}",
            file.id,
            file.size
        );
    }
    if file.sha256 != sha256 {
        bail!(
            "upload {}: the server's sha256 {} is not the file's {sha256}",
            file.id,
            file.sha256
        );
    }
    Ok(())
}

/// Downloads every upload as its owner and compares the sha256 of the bytes with the file's.
async fn check_downloads(http: &Http, uploads: &[Uploaded<'_>]) -> Result<()> {
    stream::iter(uploads)
        .map(|u| async move {
            let (sha256, len) = http.download_sha256(u.owner, &u.file.id).await?;
            if len != u.file.size || sha256 != u.sha256 {
                bail!(
                    "download {}: {len} bytes with sha256 {sha256}; uploaded {} bytes with \
                     sha256 {}",
                    u.file.id,
                    u.file.size,
                    u.sha256
                );
            }
            Ok(())
        })
        .buffer_unordered(CHECKS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn delete_uploads(http: &Http, uploads: &[Uploaded<'_>]) -> Result<()> {
    stream::iter(uploads)
        .map(|u| http.delete_file(u.owner, &u.file.id))
        .buffer_unordered(CHECKS_AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn throughput(ctx: &Ctx, report: &mut Report, sizes: &UploadSizes) -> Result<()> {
    let server = spawn_server(ctx).await?;
    let http = Http::new(server.port())?;
    let clients = &ctx.users[..sizes.clients];
    // After the server started: it prepares the bucket (see crate::gridfs).
    let raw = RawBucket::open(&ctx.services.mongodb_uri).await?;
    let files: Vec<(Bytes, String)> = (0..sizes.files as u64)
        .map(|seed| {
            let bytes = Payload::new(seed, sizes.file_bytes).to_bytes();
            let sha256 = sha256_hex(&bytes);
            (bytes, sha256)
        })
        .collect();
    let bytes: Vec<Bytes> = files.iter().map(|(b, _)| b.clone()).collect();
    let total = sizes.files as u64 * sizes.file_bytes;

    // Warm-up, not measured: one file per client and per writer, so both sides start with their
    // connections open.
    let warm = &files[..sizes.clients.min(files.len())];
    let (_, uploads) = upload_files(&http, clients, warm, "uploads: warm-up").await?;
    check_downloads(&http, &uploads).await?;
    delete_uploads(&http, &uploads).await?;
    let warm_prefix = format!("bench-{}-warm", ctx.prefix);
    raw.write(&bytes[..warm.len()], &warm_prefix, sizes.clients)
        .await?;
    raw.delete(&warm_prefix, warm.len()).await?;

    let cpu = ctx.cpu_with(&[("chat-server", server.pid())]);
    let mut rounds = Vec::new();
    for round in 1..=sizes.rounds {
        let sample = cpu.sample();
        let (upload_secs, uploads) =
            upload_files(&http, clients, &files, &format!("uploads: round {round}")).await?;
        report.cpu(
            SCENARIO,
            &format!("POST /files, round {round}"),
            sample.since(),
        );
        check_downloads(&http, &uploads)
            .await
            .with_context(|| format!("round {round}"))?;
        delete_uploads(&http, &uploads).await?;

        let id_prefix = format!("bench-{}-{round}", ctx.prefix);
        let sample = cpu.sample();
        let raw_secs = raw.write(&bytes, &id_prefix, sizes.clients).await?;
        report.cpu(
            SCENARIO,
            &format!("raw GridFS writes, round {round}"),
            sample.since(),
        );
        raw.delete(&id_prefix, bytes.len()).await?;

        let r = UploadRound {
            round,
            files: sizes.files,
            file_bytes: sizes.file_bytes,
            clients: sizes.clients,
            upload_secs,
            upload_mib_per_sec: mib_per_sec(total, upload_secs),
            raw_secs,
            raw_mib_per_sec: mib_per_sec(total, raw_secs),
        };
        tracing::info!(
            round,
            upload_mib_s = r.upload_mib_per_sec,
            raw_mib_s = r.raw_mib_per_sec,
            ratio = r.ratio(),
            "upload throughput round"
        );
        rounds.push(r);
    }
    server.terminate().await?;

    let up = Spread::of(
        &rounds
            .iter()
            .map(|r| r.upload_mib_per_sec)
            .collect::<Vec<_>>(),
    );
    let raw = Spread::of(&rounds.iter().map(|r| r.raw_mib_per_sec).collect::<Vec<_>>());
    let ratios = Spread::of(&rounds.iter().map(UploadRound::ratio).collect::<Vec<_>>());
    if let (Some(up), Some(raw)) = (up, raw) {
        report.rows.push(
            Row::new(
                SCENARIO,
                &format!(
                    "upload throughput, {} × {} files from {} clients (median)",
                    sizes.files,
                    size(sizes.file_bytes),
                    sizes.clients
                ),
                up.median,
                "MiB/s",
            )
            .spread(Some(up))
            .limit("raw GridFS writes of the same bytes (median)", raw.median)
            .limit_spread(Some(raw)),
        );
    }
    if let Some(ratios) = ratios {
        report.notes.push(format!(
            "Uploads: upload ÷ raw GridFS throughput per round {} (median {:.2}; the results \
             table divides the median throughputs).",
            rounds
                .iter()
                .map(|r| format!("{:.2}", r.ratio()))
                .collect::<Vec<_>>()
                .join(", "),
            ratios.median
        ));
    }
    report.upload_rounds.extend(rounds);
    Ok(())
}

async fn memory(ctx: &Ctx, report: &mut Report, sizes: &UploadSizes) -> Result<()> {
    let clients = &ctx.users[..sizes.memory_clients];
    let mut rounds = Vec::new();
    for round in 1..=sizes.memory_rounds {
        let r = memory_round(ctx, clients, sizes.memory_file_bytes, round).await?;
        tracing::info!(
            round,
            idle_mb = r.idle_rss_bytes as f64 / 1e6,
            peak_mb = r.peak_rss_bytes as f64 / 1e6,
            growth_mb = r.growth_mb(),
            mib_s = r.mib_per_sec,
            samples = r.samples,
            "upload memory round"
        );
        rounds.push(r);
    }
    let growth = Spread::of(
        &rounds
            .iter()
            .map(UploadMemoryRound::growth_mb)
            .collect::<Vec<_>>(),
    );
    if let Some(growth) = growth {
        let in_flight = sizes.memory_clients as u64 * sizes.memory_file_bytes;
        report.rows.push(
            Row::new(
                SCENARIO,
                &format!(
                    "server RSS peak − idle, {} clients × {} at once (worst round)",
                    sizes.memory_clients,
                    size(sizes.memory_file_bytes)
                ),
                growth.max,
                "MB",
            )
            .spread(Some(growth))
            .limit("MB uploaded at once", in_flight as f64 / 1e6)
            .target("< 100 MB", growth.max < GROWTH_TARGET_MB, ctx.sizes.full),
        );
    }
    report.upload_memory_rounds.extend(rounds);
    Ok(())
}

/// One memory round on a fresh server: idle RSS, then every client uploads one file of
/// `file_bytes` at once while the RSS is sampled; then the checks, and the files deleted.
async fn memory_round(
    ctx: &Ctx,
    clients: &[User],
    file_bytes: u64,
    round: usize,
) -> Result<UploadMemoryRound> {
    let server = spawn_server(ctx).await?;
    let http = Http::new(server.port())?;
    // Each client's first request (its session checked, the pools opened), and room left in
    // its quota.
    let quota = server_conf::shipped()?.files.quota_bytes_per_user.get();
    for user in clients {
        let used = http.used_bytes(user).await?;
        if used + file_bytes > quota {
            bail!(
                "{} has {used} bytes of uploads; {file_bytes} more is over the quota",
                user.name
            );
        }
    }
    tokio::time::sleep(QUIET).await;
    let idle = server.rss_bytes()?;

    let payloads: Vec<Payload> = (0..clients.len() as u64)
        .map(|i| Payload::new(MEMORY_SEEDS + round as u64 * 1000 + i, file_bytes))
        .collect();
    let bar = progress(
        clients.len() as u64,
        &format!("upload memory: round {round}"),
    );
    let sampler = PeakRss::start(server.pid(), RSS_EVERY);
    let start = Instant::now();
    let files =
        futures_util::future::try_join_all(clients.iter().zip(&payloads).map(|(owner, p)| {
            let (http, bar) = (&http, &bar);
            async move {
                let pieces = stream::iter(p.pieces(PIECE).map(Ok::<Bytes, std::io::Error>));
                let body = reqwest::Body::wrap_stream(pieces);
                let file = http.upload(owner, "bench-large.bin", body, p.len()).await?;
                bar.inc(1);
                Ok::<_, anyhow::Error>(file)
            }
        }))
        .await;
    let secs = start.elapsed().as_secs_f64();
    let peak = sampler.stop();
    bar.finish_and_clear();
    let files = files.with_context(|| format!("upload memory round {round}"))?;

    // The expected hashes are generated again only now, so the load generator's CPU stays out
    // of the measurement.
    let uploads: Vec<Uploaded> = clients
        .iter()
        .zip(files)
        .zip(&payloads)
        .map(|((owner, file), p)| Uploaded {
            owner,
            file,
            sha256: p.sha256_hex(),
        })
        .collect();
    for u in &uploads {
        check_answer(&u.file, file_bytes, &u.sha256)?;
    }
    check_downloads(&http, &uploads)
        .await
        .with_context(|| format!("upload memory round {round}"))?;
    delete_uploads(&http, &uploads).await?;
    server.terminate().await?;

    Ok(UploadMemoryRound {
        round,
        clients: clients.len(),
        file_bytes,
        secs,
        mib_per_sec: mib_per_sec(clients.len() as u64 * file_bytes, secs),
        idle_rss_bytes: idle,
        peak_rss_bytes: peak.peak_bytes,
        samples: peak.samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(size: u64, sha256: &str) -> UploadedFile {
        UploadedFile {
            id: "f1".into(),
            size,
            sha256: sha256.into(),
        }
    }

    #[test]
    fn an_answer_with_another_size_or_sha256_fails_the_upload() {
        assert!(check_answer(&answer(10, "ab"), 10, "ab").is_ok());
        let short = check_answer(&answer(9, "ab"), 10, "ab").expect_err("short");
        assert!(short.to_string().contains("9 bytes of 10"), "{short}");
        let other = check_answer(&answer(10, "cd"), 10, "ab").expect_err("other hash");
        assert!(other.to_string().contains("sha256 cd"), "{other}");
    }

    #[test]
    fn the_sizes_fit_the_shipped_limits() {
        check_limits(&UploadSizes::tiny()).expect("tiny sizes");
        check_limits(&UploadSizes::full()).expect("full sizes");
        let mut over = UploadSizes::full();
        over.memory_file_bytes += 1;
        assert!(
            check_limits(&over).is_err(),
            "one byte over files.max_bytes"
        );
    }
}
