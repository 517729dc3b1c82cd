//! Every anti-spam key, derived in one place. The scripts take them as KEYS, except the
//! standing script, which rebuilds the per-peer ones from the user's prefix
//! (`<prefix>una:<R>`, `<prefix>unablock:<R>`): the names here and there must agree, and the
//! tests below pin the layout.
//!
//! Every key of a pair or of a user carries the hash tag of the user named first
//! (`as:{u:<S>}...`), so each user's keys share one slot in cluster mode: the send check
//! touches only the sender's, the answer step only the recipient's.

use crate::domain::{GroupId, UserId};
use crate::store::redis::Keys;

/// The keys of one sender (`from`) and, for a 1:1 send, one recipient.
pub(crate) struct SpamKeys<'a> {
    keys: &'a Keys,
}

/// What an event rule counts per (see `Antispam::check_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventScope {
    /// The user acting.
    Actor,
    /// A group, whoever acts in it.
    Group(GroupId),
}

impl<'a> SpamKeys<'a> {
    pub(crate) fn new(keys: &'a Keys) -> Self {
        Self { keys }
    }

    /// What every anti-spam key of `user` starts with (the standing script's ARGV).
    pub(crate) fn prefix(&self, user: UserId) -> String {
        self.keys.antispam(user.0, "")
    }

    /// Set while the user is muted.
    pub(crate) fn mute(&self, user: UserId) -> String {
        self.keys.antispam(user.0, "mute")
    }

    /// Set while a refusal of the user's counts towards the next mute step.
    pub(crate) fn strike(&self, user: UserId) -> String {
        self.keys.antispam(user.0, "strike")
    }

    /// How many mutes the user has had (the step of the next one).
    pub(crate) fn step(&self, user: UserId) -> String {
        self.keys.antispam(user.0, "step")
    }

    /// The user's sends in the rate window.
    pub(crate) fn rate(&self, user: UserId) -> String {
        self.keys.antispam(user.0, "rate")
    }

    /// The user's sends of one (normalised) text in the duplicate window.
    pub(crate) fn duplicate(&self, user: UserId, fingerprint: u64) -> String {
        self.keys
            .antispam(user.0, &format!("dup:{fingerprint:016x}"))
    }

    /// The user's sends to one group in its window.
    pub(crate) fn group_rate(&self, user: UserId, group: GroupId) -> String {
        self.keys.antispam(user.0, &format!("grate:{group}"))
    }

    /// Messages `from` sent `to` that `to` has not answered.
    pub(crate) fn unanswered(&self, from: UserId, to: UserId) -> String {
        self.keys.antispam(from.0, &format!("una:{to}"))
    }

    /// Set while `from` may not write to `to` for lack of an answer.
    pub(crate) fn unanswered_block(&self, from: UserId, to: UserId) -> String {
        self.keys.antispam(from.0, &format!("unablock:{to}"))
    }

    /// Set once `to` has written to `from`: `from`'s messages to `to` are answered. Read by
    /// `from`'s sends, written by `to`'s (the answer step), so it lives with `from`'s keys.
    pub(crate) fn answered(&self, from: UserId, to: UserId) -> String {
        self.keys.antispam(from.0, &format!("answered:{to}"))
    }

    /// The peers a user has unanswered messages to (read by the standing script).
    pub(crate) fn unanswered_peers(&self, user: UserId) -> String {
        self.keys.antispam(user.0, "unaset")
    }

    /// The count of one event rule of `actor` for its scope.
    pub(crate) fn event(&self, rule: &str, actor: UserId, scope: EventScope) -> String {
        match scope {
            EventScope::Actor => self.keys.antispam(actor.0, &format!("ev:{rule}")),
            EventScope::Group(group) => self
                .keys
                .antispam_scoped(&format!("g{group}"), &format!("ev:{rule}")),
        }
    }

    /// Set while a typing notice of the user in the conversation was pushed.
    pub(crate) fn typing(&self, user: UserId, conversation: &str) -> String {
        self.keys
            .antispam(user.0, &format!("typing:{conversation}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix_and_names_its_parts() {
        let keys = Keys::new("t:", 1);
        let k = SpamKeys::new(&keys);
        let (s, r) = (UserId(7), UserId(12));
        assert_eq!(k.prefix(s), "t:as:{u:7}");
        let all = [
            (k.mute(s), "mute"),
            (k.strike(s), "strike"),
            (k.step(s), "step"),
            (k.rate(s), "rate"),
            (k.duplicate(s, 0xab), "dup:00000000000000ab"),
            (k.group_rate(s, GroupId(3)), "grate:3"),
            (k.unanswered(s, r), "una:12"),
            (k.unanswered_block(s, r), "unablock:12"),
            (k.answered(s, r), "answered:12"),
            (k.unanswered_peers(s), "unaset"),
            (k.event("receipts", s, EventScope::Actor), "ev:receipts"),
            (k.typing(s, "u:7:12"), "typing:u:7:12"),
        ];
        for (key, rest) in all {
            assert_eq!(key, format!("{}{rest}", k.prefix(s)));
        }
        assert_eq!(
            k.event("group_edits", s, EventScope::Group(GroupId(3))),
            "t:as:{s:g3}ev:group_edits"
        );
    }

    #[test]
    fn the_directions_of_a_pair_are_different_keys() {
        let keys = Keys::new("", 1);
        let k = SpamKeys::new(&keys);
        let (a, b) = (UserId(1), UserId(2));
        assert_ne!(k.unanswered(a, b), k.unanswered(b, a));
        assert_ne!(k.unanswered_block(a, b), k.unanswered_block(b, a));
        assert_ne!(k.answered(a, b), k.answered(b, a));
    }

    #[test]
    fn the_standing_script_rebuilds_the_per_peer_keys_alike() {
        // STANDING computes `prefix .. 'una:' .. peer` (and 'unablock:').
        let keys = Keys::new("p:", 1);
        let k = SpamKeys::new(&keys);
        let (s, r) = (UserId(70), UserId(120));
        assert_eq!(k.unanswered(s, r), format!("{}una:{r}", k.prefix(s)));
        assert_eq!(
            k.unanswered_block(s, r),
            format!("{}unablock:{r}", k.prefix(s))
        );
    }

    #[test]
    fn the_check_touches_one_slot_and_the_answer_step_another() {
        use crate::store::redis::shared::slot;
        let keys = Keys::new("p:", 1);
        let k = SpamKeys::new(&keys);
        let (s, r) = (UserId(70), UserId(120));
        let sender = slot(k.mute(s).as_bytes());
        for key in [
            k.rate(s),
            k.duplicate(s, 1),
            k.group_rate(s, GroupId(1)),
            k.unanswered(s, r),
            k.unanswered_block(s, r),
            k.answered(s, r),
            k.unanswered_peers(s),
            keys.sent(s.0, "x"),
            k.event("edits", s, EventScope::Actor),
        ] {
            assert_eq!(slot(key.as_bytes()), sender, "{key}");
        }
        let recipient = slot(k.mute(r).as_bytes());
        for key in [
            k.answered(r, s),
            k.unanswered(r, s),
            k.unanswered_block(r, s),
            k.unanswered_peers(r),
        ] {
            assert_eq!(slot(key.as_bytes()), recipient, "{key}");
        }
    }
}
