//! Every anti-spam key, derived in one place. The scripts take them as KEYS, except the
//! standing script, which rebuilds the per-peer ones from the prefix (`<prefix>una:<S>:<R>`,
//! `<prefix>unablock:<S>:<R>`): the names here and there must agree, and the tests below pin
//! the layout.

use crate::domain::{GroupId, UserId};
use crate::store::redis::Keys;

/// The keys of one sender (`from`) and, for a 1:1 send, one recipient.
pub(crate) struct SpamKeys<'a> {
    keys: &'a Keys,
}

impl<'a> SpamKeys<'a> {
    pub(crate) fn new(keys: &'a Keys) -> Self {
        Self { keys }
    }

    /// What every anti-spam key starts with (the standing script's ARGV).
    pub(crate) fn prefix(&self) -> String {
        self.keys.antispam("")
    }

    /// Set while the user is muted.
    pub(crate) fn mute(&self, user: UserId) -> String {
        self.keys.antispam(&format!("mute:{user}"))
    }

    /// Set while a refusal of the user's counts towards the next mute step.
    pub(crate) fn strike(&self, user: UserId) -> String {
        self.keys.antispam(&format!("strike:{user}"))
    }

    /// How many mutes the user has had (the step of the next one).
    pub(crate) fn step(&self, user: UserId) -> String {
        self.keys.antispam(&format!("step:{user}"))
    }

    /// The user's sends in the rate window.
    pub(crate) fn rate(&self, user: UserId) -> String {
        self.keys.antispam(&format!("rate:{user}"))
    }

    /// The user's sends of one (normalised) text in the duplicate window.
    pub(crate) fn duplicate(&self, user: UserId, fingerprint: u64) -> String {
        self.keys
            .antispam(&format!("dup:{user}:{fingerprint:016x}"))
    }

    /// The user's sends to one group in its window.
    pub(crate) fn group_rate(&self, user: UserId, group: GroupId) -> String {
        self.keys.antispam(&format!("grate:{user}:{group}"))
    }

    /// Messages `from` sent `to` that `to` has not answered.
    pub(crate) fn unanswered(&self, from: UserId, to: UserId) -> String {
        self.keys.antispam(&format!("una:{from}:{to}"))
    }

    /// Set while `from` may not write to `to` for lack of an answer.
    pub(crate) fn unanswered_block(&self, from: UserId, to: UserId) -> String {
        self.keys.antispam(&format!("unablock:{from}:{to}"))
    }

    /// Set once `from` has written to `to` (an answer lifts `to`'s unanswered count).
    pub(crate) fn answered(&self, from: UserId, to: UserId) -> String {
        self.keys.antispam(&format!("answered:{from}:{to}"))
    }

    /// The peers a user has unanswered messages to (read by the standing script).
    pub(crate) fn unanswered_peers(&self, user: UserId) -> String {
        self.keys.antispam(&format!("unaset:{user}"))
    }

    /// The count of one event rule for one scope (a sender, a group, an actor).
    pub(crate) fn event(&self, rule: &str, scope: &str) -> String {
        self.keys.antispam(&format!("ev:{rule}:{scope}"))
    }

    /// Set while a typing notice of the user in the conversation was pushed.
    pub(crate) fn typing(&self, user: UserId, conversation: &str) -> String {
        self.keys.antispam(&format!("typing:{user}:{conversation}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix_and_names_its_parts() {
        let keys = Keys::new("t:");
        let k = SpamKeys::new(&keys);
        let (s, r) = (UserId(7), UserId(12));
        assert_eq!(k.prefix(), "t:as:");
        let all = [
            (k.mute(s), "mute:7"),
            (k.strike(s), "strike:7"),
            (k.step(s), "step:7"),
            (k.rate(s), "rate:7"),
            (k.duplicate(s, 0xab), "dup:7:00000000000000ab"),
            (k.group_rate(s, GroupId(3)), "grate:7:3"),
            (k.unanswered(s, r), "una:7:12"),
            (k.unanswered_block(s, r), "unablock:7:12"),
            (k.answered(s, r), "answered:7:12"),
            (k.unanswered_peers(s), "unaset:7"),
            (k.event("receipts", "7"), "ev:receipts:7"),
            (k.typing(s, "u:7:12"), "typing:7:u:7:12"),
        ];
        for (key, rest) in all {
            assert_eq!(key, format!("{}{rest}", k.prefix()));
        }
    }

    #[test]
    fn the_directions_of_a_pair_are_different_keys() {
        let keys = Keys::new("");
        let k = SpamKeys::new(&keys);
        let (a, b) = (UserId(1), UserId(2));
        assert_ne!(k.unanswered(a, b), k.unanswered(b, a));
        assert_ne!(k.unanswered_block(a, b), k.unanswered_block(b, a));
        assert_ne!(k.answered(a, b), k.answered(b, a));
    }

    #[test]
    fn the_standing_script_rebuilds_the_per_peer_keys_alike() {
        // STANDING computes `prefix .. 'una:' .. sender .. ':' .. peer` (and 'unablock:').
        let keys = Keys::new("p:");
        let k = SpamKeys::new(&keys);
        let (s, r) = (UserId(70), UserId(120));
        assert_eq!(k.unanswered(s, r), format!("{}una:{s}:{r}", k.prefix()));
        assert_eq!(
            k.unanswered_block(s, r),
            format!("{}unablock:{s}:{r}", k.prefix())
        );
    }
}
