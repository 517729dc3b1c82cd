//! Group commit: sends queue here; one task per process takes whatever is waiting (up to
//! `messages.batch_max`), draws their seqs in one Redis round trip, writes them with one
//! unordered `insert_many`, publishes them in one more round trip, and only then answers each
//! sender. Up to `messages.write_concurrency` batches are being stored at once (the storage
//! round trip is the slow part; a batch joins one being stored only when at least
//! `messages.write_overlap_min` sends wait), but batches draw their seqs and are published
//! strictly one after another, in arrival order, so within a process events leave in seq order.
//! Publishing a batch overlaps storing the next ones.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use mongodb::Database;
use mongodb::bson::{self, oid::ObjectId};
use mongodb::error::ErrorKind;
use tokio::sync::{mpsc, oneshot};

use crate::chat::events::event_json;
use crate::chat::known::Known;
use crate::domain::terms::terms;
use crate::domain::{ConversationId, Location, MessageType, UserId};
use crate::error::{AppError, AppResult};
use crate::hub::{Audience, ConnId, Delivery, Hub};
use crate::store::mongo::messages::{
    self, AttachmentDoc, Message, MessageDoc, ReplyDoc, SYSTEM_TYPE, user_key,
};
use crate::store::mongo::reads;
use crate::store::redis::{Keys, Shared, seq};

/// How often one send is retried after its seq collided with a stored one (Redis lost its
/// counter while the message holding that seq was in flight).
const SEQ_COLLISION_RETRIES: usize = 3;

/// A message to store and deliver.
pub(crate) struct Draft {
    pub conversation: ConversationId,
    pub from: UserId,
    pub to: String,
    pub kind: MessageType,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub audience: Audience,
    pub skip: Option<ConnId>,
    /// The sender's group nickname, stored with the message.
    pub nickname: Option<String>,
    /// The upload an image, voice, video or file message carries.
    pub attachment: Option<AttachmentDoc>,
    /// The place of a location message.
    pub location: Option<Location>,
    /// Reply, forward and mentions.
    pub extras: Extras,
}

/// What a message carries besides its body.
#[derive(Default)]
pub(crate) struct Extras {
    /// The message it answers.
    pub reply_to: Option<ReplyDoc>,
    /// A copy of another message, and whose that was when the recipients may know.
    pub forwarded: bool,
    pub forwarded_from: Option<i64>,
    /// As stored: member ids, or `"all"`.
    pub mentions: Vec<String>,
    /// The members the message mentions: they get it pushed with `"mentioned": true`, also in
    /// do-not-disturb, and are not in the draft's audience.
    pub mentioned: Vec<UserId>,
}

/// A message event for a mentioned member.
#[derive(serde::Serialize)]
struct MentionedMessage<'a> {
    #[serde(flatten)]
    message: &'a Message,
    mentioned: bool,
}

pub(crate) enum Outcome {
    /// Stored now and published; `online` counts the primary recipients that were live.
    Stored { message: Message, online: u32 },
    /// The sender already sent this `client_msg_id`: the stored message, nothing new done.
    Duplicate(Message),
}

struct Job {
    draft: Draft,
    reply: oneshot::Sender<AppResult<Outcome>>,
}

#[derive(Clone)]
pub(crate) struct MessageWriter {
    tx: mpsc::Sender<Job>,
}

struct Backend {
    redis: Shared,
    mongo: Database,
    keys: Keys,
    hub: Hub,
    batch_max: usize,
    concurrency: usize,
    overlap_min: usize,
    /// Direct conversations whose read positions exist.
    known: Known<String>,
}

/// A batch's place in the seq order: it draws its seqs once the batch before it has drawn
/// theirs (`wait`), then lets the next one go (`done`; dropping it does too).
struct Turn {
    wait: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl Turn {
    /// The turn after the one taken last (`last` then waits for this one).
    fn after(last: &mut Option<oneshot::Receiver<()>>) -> Self {
        let (done, next_wait) = oneshot::channel();
        Self {
            wait: last.replace(next_wait),
            done: Some(done),
        }
    }

    async fn take(&mut self) {
        if let Some(wait) = self.wait.take() {
            let _ = wait.await;
        }
    }

    fn pass(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// A batch after storage, waiting to be published and answered.
struct StoredBatch {
    jobs: Vec<Job>,
    slots: Vec<JobState>,
    stored: Vec<(usize, MessageDoc)>,
    replayed: Vec<(usize, MessageDoc)>,
    /// Seqs drawn for messages that were certainly not stored (see `Delivery::given_up`).
    given_up: Vec<(String, i64)>,
}

impl MessageWriter {
    pub(crate) fn start(
        redis: Shared,
        mongo: Database,
        keys: Keys,
        hub: Hub,
        settings: &crate::config::MessageSettings,
    ) -> Self {
        let (batch_max, queue) = (settings.batch_max, settings.write_queue);
        let (tx, rx) = mpsc::channel(queue.get());
        let backend = Backend {
            redis,
            mongo,
            keys,
            hub,
            batch_max: batch_max.get(),
            concurrency: settings.write_concurrency.get(),
            // A full batch always qualifies.
            overlap_min: settings.write_overlap_min.min(batch_max).get(),
            known: Known::default(),
        };
        tokio::spawn(run(rx, backend));
        Self { tx }
    }

    /// Stores and delivers the draft; returns once it is durable (or was already stored).
    pub(crate) async fn submit(&self, draft: Draft) -> AppResult<Outcome> {
        self.queue(draft).await?.outcome().await
    }

    /// Queues the draft for storage (drafts queued one after another get increasing seqs in a
    /// conversation); the outcome comes later.
    pub(crate) async fn queue(&self, draft: Draft) -> AppResult<Queued> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { draft, reply })
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("message writer stopped")))?;
        Ok(Queued(answer))
    }
}

/// A queued draft.
pub(crate) struct Queued(oneshot::Receiver<AppResult<Outcome>>);

impl Queued {
    /// Waits until it is durable (or known to be stored already).
    pub(crate) async fn outcome(self) -> AppResult<Outcome> {
        self.0
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("message writer dropped a send")))?
    }
}

async fn run(mut rx: mpsc::Receiver<Job>, backend: Backend) {
    // Sends received, not yet in a batch.
    let mut waiting: Vec<Job> = Vec::new();
    let mut storing = FuturesOrdered::new();
    // Stored batches, published one after another in the order they were taken.
    let mut stored: VecDeque<StoredBatch> = VecDeque::new();
    let mut publishing: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
    // The turn of the batch taken last; the next batch waits for it.
    let mut last_turn: Option<oneshot::Receiver<()>> = None;
    let mut open = true;
    loop {
        // A batch starts at once when none is being stored. While one is, the next starts only
        // once enough sends wait: small overlapping batches cost the store more per message
        // than they save in waiting, and at moderate load one batch at a time is faster.
        loop {
            let size = batch_to_start(
                waiting.len(),
                storing.len(),
                backend.batch_max,
                backend.concurrency,
                backend.overlap_min,
            );
            if size == 0 {
                break;
            }
            let rest = waiting.split_off(size);
            let batch = std::mem::replace(&mut waiting, rest);
            storing.push_back(backend.store(batch, Turn::after(&mut last_turn)));
        }
        if publishing.is_none()
            && let Some(batch) = stored.pop_front()
        {
            publishing = Some(Box::pin(backend.finish(batch)));
        }
        if !open && waiting.is_empty() && storing.is_empty() && publishing.is_none() {
            return;
        }
        tokio::select! {
            job = rx.recv(), if open && waiting.len() < backend.batch_max => {
                let Some(job) = job else {
                    open = false;
                    continue;
                };
                waiting.push(job);
                while waiting.len() < backend.batch_max {
                    match rx.try_recv() {
                        Ok(job) => waiting.push(job),
                        Err(_) => break,
                    }
                }
            }
            Some(batch) = storing.next(), if !storing.is_empty() => stored.push_back(batch),
            () = async { if let Some(p) = publishing.as_mut() { p.await } }, if publishing.is_some() => {
                publishing = None;
            }
        }
    }
}

/// The scheduling rule: how many of the `waiting` sends make a batch that starts now, with
/// `storing` batches being stored (0: none starts yet). A batch starts at once when none is
/// being stored; while some are, another starts only below `concurrency` and once at least
/// `overlap_min` sends wait; a batch takes at most `batch_max`.
fn batch_to_start(
    waiting: usize,
    storing: usize,
    batch_max: usize,
    concurrency: usize,
    overlap_min: usize,
) -> usize {
    if waiting == 0 || storing >= concurrency || (storing > 0 && waiting < overlap_min) {
        0
    } else {
        waiting.min(batch_max)
    }
}

enum JobState {
    Pending,
    /// Written; answered once published.
    Stored,
    /// Boxed: a message is large next to the other states.
    Done(Box<AppResult<Outcome>>),
}

impl Backend {
    /// Draws the batch's seqs (in its turn) and writes it.
    #[tracing::instrument(skip_all, fields(batch = jobs.len()))]
    async fn store(&self, jobs: Vec<Job>, mut turn: Turn) -> StoredBatch {
        let mut slots: Vec<JobState> = jobs.iter().map(|_| JobState::Pending).collect();
        if let Err(err) = self.ensure_read_positions(&jobs).await {
            for slot in &mut slots {
                *slot = JobState::Done(Box::new(Err(clone_error(&err))));
            }
            return StoredBatch {
                jobs,
                slots,
                stored: Vec::new(),
                replayed: Vec::new(),
                given_up: Vec::new(),
            };
        }
        let mut stored: Vec<(usize, MessageDoc)> = Vec::new();
        // Retries of sends stored earlier: published again only if that never happened.
        let mut replayed: Vec<(usize, MessageDoc)> = Vec::new();
        let mut given_up: Vec<(String, i64)> = Vec::new();
        let mut floors: HashMap<String, i64> = HashMap::new();
        for _ in 0..=SEQ_COLLISION_RETRIES {
            let pending: Vec<usize> = (0..jobs.len())
                .filter(|i| matches!(slots[*i], JobState::Pending))
                .collect();
            if pending.is_empty() {
                break;
            }
            match self
                .write(&jobs, &pending, &floors, &mut turn, &mut given_up)
                .await
            {
                Ok(round) => {
                    for (i, result) in round {
                        match result {
                            Written::Stored(doc) => {
                                stored.push((i, doc));
                                slots[i] = JobState::Stored;
                            }
                            Written::Duplicate(doc) => {
                                slots[i] = JobState::Done(Box::new(Ok(Outcome::Duplicate(
                                    Message::from(&doc),
                                ))));
                                replayed.push((i, doc));
                            }
                            Written::SeqTaken(conversation) => {
                                let stored_max =
                                    messages::max_seq(&self.mongo, &conversation).await;
                                match stored_max {
                                    Ok(max) => {
                                        floors.insert(conversation, max);
                                    }
                                    Err(err) => slots[i] = JobState::Done(Box::new(Err(err))),
                                }
                            }
                            Written::Failed(err) => slots[i] = JobState::Done(Box::new(Err(err))),
                        }
                    }
                }
                Err(err) => {
                    for i in pending {
                        slots[i] = JobState::Done(Box::new(Err(clone_error(&err))));
                    }
                }
            }
        }
        turn.pass();
        // A send retried after a seq collision holds a later seq than its batch neighbours.
        stored.sort_by_key(|(_, doc)| doc.seq);
        StoredBatch {
            jobs,
            slots,
            stored,
            replayed,
            given_up,
        }
    }

    /// Publishes a stored batch and answers its senders.
    async fn finish(&self, batch: StoredBatch) {
        let StoredBatch {
            jobs,
            mut slots,
            stored,
            replayed,
            given_up,
        } = batch;
        let online = self.publish(&jobs, &stored, &replayed, &given_up).await;
        for ((i, doc), online) in stored.iter().zip(online) {
            slots[*i] = JobState::Done(Box::new(Ok(Outcome::Stored {
                message: Message::from(doc),
                online,
            })));
        }
        for (job, slot) in jobs.into_iter().zip(slots) {
            let result = match slot {
                JobState::Done(result) => *result,
                JobState::Stored => Err(AppError::Internal(anyhow::anyhow!(
                    "stored but not published"
                ))),
                JobState::Pending => Err(AppError::Internal(anyhow::anyhow!(
                    "seq kept colliding after {SEQ_COLLISION_RETRIES} retries"
                ))),
            };
            let _ = job.reply.send(result);
        }
    }

    /// Draws seqs for the pending jobs and inserts them; says what became of each.
    async fn write(
        &self,
        jobs: &[Job],
        pending: &[usize],
        floors: &HashMap<String, i64>,
        turn: &mut Turn,
        given_up: &mut Vec<(String, i64)>,
    ) -> AppResult<Vec<(usize, Written)>> {
        let conversations: Vec<String> = pending
            .iter()
            .map(|i| jobs[*i].draft.conversation.to_string())
            .collect();
        turn.take().await;
        let seqs =
            seq::allocate(&self.redis, &self.mongo, &self.keys, &conversations, floors).await;
        // Retries after a collision (rare: Redis lost its counters) draw again outside the order.
        turn.pass();
        let seqs = seqs?;
        let now = bson::DateTime::now();
        let docs: Vec<MessageDoc> = pending
            .iter()
            .zip(conversations)
            .zip(&seqs)
            .map(|((i, conversation), seq)| {
                let draft = &jobs[*i].draft;
                MessageDoc {
                    id: ObjectId::new(),
                    conversation,
                    seq: *seq,
                    from: user_key(draft.from),
                    to: draft.to.clone(),
                    kind: draft.kind.0,
                    content: draft.content.clone(),
                    client_msg_id: draft.client_msg_id.clone(),
                    created_at: now,
                    hidden_for: Vec::new(),
                    recalled_at: None,
                    nickname: draft.nickname.clone(),
                    attachment: draft.attachment.clone(),
                    location: draft.location.clone(),
                    edited_at: None,
                    edits: Vec::new(),
                    reply_to: draft.extras.reply_to.clone(),
                    forwarded: draft.extras.forwarded,
                    forwarded_from: draft.extras.forwarded_from,
                    mentions: draft.extras.mentions.clone(),
                    terms: if draft.kind.0 == SYSTEM_TYPE {
                        Vec::new()
                    } else {
                        terms(&draft.content)
                    },
                    reacted_at: None,
                    changed_at: None,
                }
            })
            .collect();
        let failed: HashMap<usize, i32> = match messages::collection(&self.mongo)
            .insert_many(&docs)
            .ordered(false)
            .await
        {
            Ok(_) => HashMap::new(),
            Err(err) => match err.kind.as_ref() {
                ErrorKind::InsertMany(e) if e.write_concern_error.is_none() => e
                    .write_errors
                    .iter()
                    .flatten()
                    .map(|w| (w.index, w.code))
                    .collect(),
                _ => return Err(err.into()),
            },
        };
        let mut out = Vec::with_capacity(docs.len());
        for (n, doc) in docs.into_iter().enumerate() {
            let i = pending[n];
            if failed.contains_key(&n) {
                // Refused by the server: this seq will never be stored. (After an error
                // without an answer per document the insert may have happened: its seq is
                // not given up, and a later message waits `messages.order_hold_ms` for it.)
                given_up.push((doc.conversation.clone(), doc.seq));
            }
            let written = match failed.get(&n) {
                None => Written::Stored(doc),
                Some(&messages::DUPLICATE_KEY) => self.explain_duplicate(&jobs[i].draft, doc).await,
                Some(code) => Written::Failed(AppError::Internal(anyhow::anyhow!(
                    "insert failed with code {code}"
                ))),
            };
            out.push((i, written));
        }
        Ok(out)
    }

    /// A duplicate key is either a retried client_msg_id or a seq already taken. A retry is
    /// the same message (conversation, type and content) under the same client_msg_id; another
    /// message under a used client_msg_id is refused, never acked with the first one.
    async fn explain_duplicate(&self, draft: &Draft, doc: MessageDoc) -> Written {
        if let Some(client_msg_id) = &draft.client_msg_id {
            match messages::find_by_client_id(&self.mongo, draft.from, client_msg_id).await {
                Ok(Some(existing)) if is_retry_of(draft, &existing) => {
                    return Written::Duplicate(existing);
                }
                Ok(Some(_)) => return Written::Failed(AppError::ClientMsgIdReused),
                Ok(None) => {}
                Err(err) => return Written::Failed(err),
            }
        }
        Written::SeqTaken(doc.conversation)
    }

    /// Publishes the stored messages in order, and the replayed ones whose first publication
    /// never happened; on failure they stay stored and reach their recipients through
    /// unread/resume, so the senders are told nobody was live. Returns the stored messages'
    /// online counts.
    async fn publish(
        &self,
        jobs: &[Job],
        stored: &[(usize, MessageDoc)],
        replayed: &[(usize, MessageDoc)],
        given_up: &[(String, i64)],
    ) -> Vec<u32> {
        let mut deliveries: Vec<Delivery> = Vec::with_capacity(stored.len() + replayed.len());
        // Where each stored message's own push is (a mentioned member's push follows it, so
        // every connection still gets the conversation in seq order).
        let mut main_push: Vec<usize> = Vec::with_capacity(stored.len());
        for ((i, doc), replay) in stored
            .iter()
            .map(|s| (s, false))
            .chain(replayed.iter().map(|r| (r, true)))
        {
            let draft = &jobs[*i].draft;
            let message = Message::from(doc);
            if !replay {
                main_push.push(deliveries.len());
            }
            // A replay goes out only if its first publication never happened: its seq is
            // then still ahead of what its conversation has published.
            deliveries.push(Delivery {
                event: event_json("message", &message),
                audience: draft.audience.clone(),
                skip: draft.skip.clone(),
                conversation: Some(doc.conversation.clone()),
                seq: Some(doc.seq),
            });
            if !draft.extras.mentioned.is_empty() {
                deliveries.push(Delivery {
                    event: event_json(
                        "message",
                        &MentionedMessage {
                            message: &message,
                            mentioned: true,
                        },
                    ),
                    audience: Audience::Users {
                        users: draft.extras.mentioned.clone(),
                        primary: 0,
                    },
                    skip: draft.skip.clone(),
                    // The same seq: published together with the message's own push.
                    conversation: Some(doc.conversation.clone()),
                    seq: Some(doc.seq),
                });
            }
        }
        deliveries.extend(
            given_up
                .iter()
                .map(|(conversation, seq)| Delivery::given_up(conversation.clone(), *seq)),
        );
        match self.hub.deliver_messages(deliveries).await {
            Ok(online) => main_push
                .iter()
                .map(|at| online.get(*at).copied().unwrap_or(0))
                .collect(),
            Err(err) => {
                tracing::error!(error = %err, "stored messages could not be published live");
                vec![0; stored.len()]
            }
        }
    }

    /// Both people in a direct conversation get a read position (it lists the conversation as
    /// theirs) before its first message is stored.
    async fn ensure_read_positions(&self, jobs: &[Job]) -> AppResult<()> {
        let mut todo: Vec<(UserId, String)> = Vec::new();
        for job in jobs {
            let conversation = job.draft.conversation;
            if let ConversationId::Direct { low, high } = conversation {
                let name = conversation.to_string();
                if !self.known.contains(&name) && !todo.iter().any(|(_, c)| *c == name) {
                    todo.push((low, name.clone()));
                    if high != low {
                        todo.push((high, name));
                    }
                }
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let ensured = futures_util::future::try_join_all(
            todo.iter()
                .map(|(user, conversation)| reads::ensure(&self.mongo, *user, conversation, 0)),
        )
        .await;
        ensured?;
        self.known.insert_all(todo.into_iter().map(|(_, c)| c));
        Ok(())
    }
}

enum Written {
    Stored(MessageDoc),
    Duplicate(MessageDoc),
    SeqTaken(String),
    Failed(AppError),
}

/// Whether `draft` is the message stored as `stored` (same sender and client_msg_id) sent again:
/// the same body, answering and copying the same messages and mentioning the same members (a
/// retry with other mentions would push to members the stored message never named).
fn is_retry_of(draft: &Draft, stored: &MessageDoc) -> bool {
    let extras = &draft.extras;
    stored.conversation == draft.conversation.to_string()
        && stored.kind == draft.kind.0
        && stored.content == draft.content
        && stored.attachment.as_ref().map(|a| &a.file_id)
            == draft.attachment.as_ref().map(|a| &a.file_id)
        && stored.location == draft.location
        && stored.reply_to.as_ref().map(|r| &r.id) == extras.reply_to.as_ref().map(|r| &r.id)
        && stored.forwarded == extras.forwarded
        && stored.mentions == extras.mentions
}

/// The same failure for every send of a batch (AppError holds non-clonable causes).
fn clone_error(err: &AppError) -> AppError {
    match err {
        AppError::Unavailable(cause) => AppError::Unavailable(anyhow::anyhow!("{cause:#}")),
        other => AppError::Internal(anyhow::anyhow!("{other}: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[test]
    fn batches_start_by_the_scheduling_rule() {
        // (waiting, storing, batch_max, concurrency, overlap_min) -> size of the batch started
        let table = [
            ((0, 0, 100, 4, 10), 0),     // nothing waits
            ((1, 0, 100, 4, 10), 1),     // idle: one send goes at once
            ((250, 0, 100, 4, 10), 100), // at most batch_max
            ((5, 1, 100, 4, 10), 0),     // one storing, too few to overlap
            ((10, 1, 100, 4, 10), 10),   // enough to overlap
            ((500, 4, 100, 4, 10), 0),   // at the concurrency limit
            ((500, 3, 100, 4, 10), 100),
            ((7, 2, 100, 1, 1), 0), // concurrency 1: strictly one at a time
        ];
        for ((waiting, storing, max, concurrency, overlap), want) in table {
            assert_eq!(
                batch_to_start(waiting, storing, max, concurrency, overlap),
                want,
                "waiting {waiting}, storing {storing}, max {max}, concurrency {concurrency}, overlap {overlap}"
            );
        }
    }

    #[tokio::test]
    async fn turns_go_in_the_order_they_were_taken_whatever_finishes_first() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut last = None;
        let mut tasks = Vec::new();
        for i in 0..4_u64 {
            let mut turn = Turn::after(&mut last);
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                // The later batches finish storing first.
                tokio::time::sleep(Duration::from_millis(40 - 10 * i)).await;
                turn.take().await;
                order.lock().map(|mut o| o.push(i)).ok();
                turn.pass();
            }));
        }
        for task in tasks {
            task.await.ok();
        }
        assert_eq!(
            *order.lock().map(|o| o.clone()).unwrap_or_default(),
            vec![0, 1, 2, 3]
        );
    }

    #[tokio::test]
    async fn a_dropped_turn_lets_the_next_one_go() {
        let mut last = None;
        let first = Turn::after(&mut last);
        let mut second = Turn::after(&mut last);
        drop(first); // a batch that failed before passing its turn
        tokio::time::timeout(Duration::from_secs(1), second.take())
            .await
            .ok()
            .unwrap_or_else(|| panic!("the next turn waited for a dropped one"));
    }

    #[test]
    fn cloned_errors_keep_their_kind() {
        let err = AppError::Unavailable(anyhow::anyhow!("redis down"));
        assert_eq!(clone_error(&err).code(), "unavailable");
        let err = AppError::Internal(anyhow::anyhow!("boom"));
        assert_eq!(clone_error(&err).code(), "internal");
    }
}
