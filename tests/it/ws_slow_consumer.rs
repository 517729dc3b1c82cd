//! A client that does not read is cut off (1013) and never slows delivery to anybody else.

use std::time::Duration;

use crate::helpers::spawn_app_with;
use crate::ws_client::{CLOSE_POLICY, CLOSE_TRY_AGAIN_LATER, DELIVERED, Ended, OK, STORED_OFFLINE};

/// Big enough that kernel and framework buffers fill after a few dozen messages.
const CONTENT_BYTES: usize = 64 * 1024;
/// The flood stops here at the latest (about 19 MiB).
const MAX_MESSAGES: usize = 300;
/// How often the sender asks (with a 1:1 send: 50004 or 50005) whether the victim is online.
const PROBE_EVERY: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ws_a_client_that_never_reads_is_disconnected_without_slowing_anybody_else() {
    let app = spawn_app_with(|s| {
        s.ws.outbound_queue = nz!(4);
        s.ws.max_frame_bytes = 1024 * 1024;
        s.messages.max_content_chars = nz!(200_000);
    })
    .await;
    let (sender, mut sender_ws) = app.login_ws("sender").await;
    let (watcher, mut watcher_ws) = app.login_ws("watcher").await;
    let victim = app.chatter("victim").await;
    let group = app.group_with(&sender, "flood", &[&watcher, &victim]).await;
    // The victim connects over a socket with a tiny receive buffer and then never reads.
    let mut victim_ws = app.connect_ws_small_buffer(&victim).await;

    let filler = "x".repeat(CONTENT_BYTES);
    let mut victim_dropped_after = None;
    for i in 0..MAX_MESSAGES {
        let sent = sender_ws
            .send_group(&group, &format!("{i}:{filler}"))
            .await
            .expect(OK)
            .message();
        // The watcher keeps getting every message, whatever happens to the victim.
        let got = watcher_ws.next_message().await;
        assert_eq!(got.id, sent.id, "message {i} reached the watcher in order");

        if i % PROBE_EVERY == PROBE_EVERY - 1 {
            let probe = sender_ws.send_to(&victim.id, "still there?").await;
            if probe.code == STORED_OFFLINE {
                victim_dropped_after = Some(i + 1);
                break;
            }
            probe.expect(DELIVERED);
        }
    }
    let flooded = victim_dropped_after.unwrap_or_else(|| {
        panic!("the victim was still online after {MAX_MESSAGES} messages of {CONTENT_BYTES} bytes")
    });

    // Reading now drains what was in flight and then finds the connection closed.
    let ended = victim_ws.expect_closed(Duration::from_secs(30)).await;
    assert!(
        matches!(
            ended,
            Ended::Close(Some(CLOSE_TRY_AGAIN_LATER | CLOSE_POLICY)) | Ended::Dropped
        ),
        "the victim was disconnected (1013) after {flooded} messages: {ended:?}"
    );

    // The watcher is still fine, and the victim can recover with a new connection.
    sender_ws
        .send_group(&group, "after the flood")
        .await
        .expect(OK);
    assert_eq!(watcher_ws.next_message().await.content, "after the flood");
    let mut victim_again = app.connect_ws(&victim).await;
    victim_again
        .send_to(&victim.id, "back again")
        .await
        .expect(DELIVERED);
}
