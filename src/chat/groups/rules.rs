//! The rules of groups that need no backend: who may act against whom.

use crate::domain::{Role, UserId};
use crate::store::mysql::groups::Membership;

/// Whether `mine` may act against `theirs` (kick, ban, mute, unmute): the owner against anyone
/// but themself, admins against plain members. `theirs` is None for a user outside the group
/// (only a ban applies to them), whom any manager may ban.
pub(crate) fn may_moderate(mine: &Membership, theirs: Option<&Membership>, me: UserId) -> bool {
    match theirs {
        Some(theirs) => {
            theirs.user_id != me.0
                && (mine.role == Role::Owner
                    || (mine.role == Role::Admin && theirs.role == Role::Member))
        }
        None => mine.is_manager(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::*;

    fn member(id: u64, role: Role) -> Membership {
        Membership {
            user_id: id,
            role,
            nickname: None,
            remark: None,
            dnd: 0,
            folded: 0,
            show_in_contacts: 0,
            muted_until: None,
            joined_at: NaiveDateTime::default(),
        }
    }

    #[test]
    fn who_may_act_against_whom() {
        use Role::{Admin, Member, Owner};
        // (actor's role, target's role or None for an outsider, allowed)
        let table = [
            (Owner, Some(Admin), true),
            (Owner, Some(Member), true),
            (Admin, Some(Member), true),
            (Admin, Some(Admin), false),
            (Admin, Some(Owner), false),
            (Member, Some(Member), false),
            (Member, Some(Admin), false),
            (Member, Some(Owner), false),
            (Owner, None, true),
            (Admin, None, true),
            (Member, None, false),
        ];
        for (actor, target, allowed) in table {
            let mine = member(1, actor);
            let theirs = target.map(|role| member(2, role));
            assert_eq!(
                may_moderate(&mine, theirs.as_ref(), UserId(1)),
                allowed,
                "{actor:?} against {target:?}"
            );
        }
        // Nobody acts against themself, not even the owner.
        let owner = member(1, Owner);
        assert!(!may_moderate(&owner, Some(&owner), UserId(1)));
    }
}
