//! The chat core: the rules of who may do what and what happens then, written once for both
//! edges (`http` and `ws`), which parse, call the core and map the result to the wire.
//!
//! - [`sending`]: ops 1 and 6 (checks, anti-spam, the writer); [`history`]: ops 2, 3 and 7.
//! - [`accounts`]: registering, checking a login, changing a password (failures counted).
//! - [`reads`]: read positions and receipts (op 4, `POST /conversations/{c}/read`).
//! - [`typing`], [`deleting`]: typing notices (op 8) and deleting or recalling a message (op 5).
//! - [`editing`], [`reactions`]: editing a message (op 9) and reacting to one (op 10);
//!   [`quoting`]: what a send answers, forwards and mentions; [`pins`]: pinned messages;
//!   [`search`]: message search.
//! - [`profiles`]: what one user sees of another (online only to contacts); [`friends`]: the
//!   pushes of friendship changes.
//! - [`email_codes`]: issuing and checking email codes, the verified-email rule, password resets.
//! - [`groups`]: who sees a group and may do what in it; joins, invitations, kicks, bans, mutes,
//!   roles, edits, each with what follows it.
//! - [`access`]: who may read and send where (`can_read`, `check_sender`, ...), decided once.
//! - [`events`]: what is pushed to whom, and group announcements; [`positions`]: read positions
//!   made when someone starts reading; [`known`]: a memo of idempotent work done.
//! - [`files`]: uploads (limits, quota, sniffing, images), who may download them, what a
//!   message may carry, and the sweep of uploads no message carries.
//! - [`writer`]: the send pipeline's group-commit writer (seqs, batched writes, publication);
//!   [`password`]: bcrypt hashing off the async threads.
//! - [`Chat`]: the handle to everything the core works with (settings, pools, hub,
//!   anti-spam, limiters), cheap to clone.

pub(crate) mod access;
pub(crate) mod accounts;
pub(crate) mod deleting;
pub(crate) mod editing;
pub(crate) mod email_codes;
pub(crate) mod events;
pub(crate) mod files;
pub(crate) mod friends;
pub(crate) mod groups;
pub(crate) mod history;
pub(crate) mod known;
pub(crate) mod password;
pub(crate) mod pins;
pub(crate) mod positions;
pub(crate) mod profiles;
pub(crate) mod quoting;
pub(crate) mod reactions;
pub(crate) mod reads;
pub(crate) mod search;
pub(crate) mod sending;
mod state;
pub(crate) mod typing;
pub(crate) mod writer;

pub(crate) use state::Chat;
