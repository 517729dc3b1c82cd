//! Creating, editing and dissolving a group, and a member's own settings in it. Only what
//! differs from the state as it is gets written: an edit that changes nothing writes, pushes and
//! counts nothing, and makes no process forget its cache of the group.

use serde_json::json;

use super::no_such_group;
use crate::chat::Chat;
use crate::domain::{GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::store::directory::Change;
use crate::store::mysql::groups::{self, Group, GroupChange, Membership, NewGroup, SettingsChange};

impl Chat {
    /// Creates a group owned by `new.owner`, who starts reading it.
    pub(crate) async fn create_group(&self, new: NewGroup<'_>) -> AppResult<Group> {
        let owner = new.owner;
        let group = groups::create(&self.mysql, new, &self.settings.groups).await?;
        self.start_reading(owner, group.id).await?;
        Ok(group)
    }

    /// A manager's edit of the group (`wanted`: the fields asked for, checked already); returns
    /// the group as it is afterwards. Pushed to the members as `event: group` `update`.
    pub(crate) async fn update_group(
        &self,
        actor: UserId,
        group: GroupId,
        wanted: GroupChange<'_>,
    ) -> AppResult<Group> {
        let seen = self.visible_group(group, actor).await?;
        seen.manager()?;
        let now = &seen.group;
        let change = GroupChange {
            name: wanted.name.filter(|n| *n != now.name),
            notice: wanted.notice.filter(|n| *n != now.notice),
            avatar: wanted.avatar.filter(|a| *a != now.avatar),
            join_mode: wanted.join_mode.filter(|m| *m != now.join_mode),
            muted: wanted.muted.filter(|m| *m != now.muted),
        };
        if change.is_empty() {
            return Ok(seen.group);
        }
        self.group_edit_allowed(actor, group).await?;
        groups::update(&self.mysql, group, change).await?;
        self.hub.changed(Change::group(group)).await;
        let updated = groups::find(&self.mysql, group)
            .await?
            .ok_or_else(no_such_group)?;
        self.group_event(
            group,
            json!({ "action": "update", "group": updated, "by": actor }),
        )
        .await;
        Ok(updated)
    }

    /// The owner dissolves the group, under its lock (no join slips in meanwhile).
    pub(crate) async fn dissolve_group(&self, actor: UserId, group: GroupId) -> AppResult<()> {
        let seen = self.visible_group(group, actor).await?;
        seen.owner()?;
        let lock = self.lock_group(group).await?;
        let dissolved = async {
            self.require_live(group).await?;
            self.announce(group, actor, json!({ "action": "dissolve", "by": actor }))
                .await?;
            groups::dissolve(&self.mysql, group).await?;
            self.hub.changed(Change::group(group)).await;
            Ok::<_, AppError>(())
        }
        .await;
        lock.release().await;
        dissolved
    }

    /// A member's change of their own settings in the group (`wanted`: checked already);
    /// returns their membership as it is afterwards.
    pub(crate) async fn update_my_settings(
        &self,
        user: UserId,
        group: GroupId,
        wanted: SettingsChange,
    ) -> AppResult<Membership> {
        let seen = self.visible_group(group, user).await?;
        let current = seen.member()?;
        let flag = |wanted: Option<bool>, now: i8| wanted.filter(|w| *w != (now != 0));
        let change = SettingsChange {
            nickname: wanted.nickname.filter(|n| *n != current.nickname),
            remark: wanted.remark.filter(|r| *r != current.remark),
            dnd: flag(wanted.dnd, current.dnd),
            folded: flag(wanted.folded, current.folded),
            show_in_contacts: flag(wanted.show_in_contacts, current.show_in_contacts),
        };
        if change.is_empty() {
            return seen.member().cloned();
        }
        groups::update_settings(&self.mysql, group, user, change).await?;
        self.hub.changed(Change::group(group)).await;
        groups::membership(&self.mysql, group, user)
            .await?
            .ok_or_else(|| {
                AppError::forbidden("not_a_member", "you are not a member of this group")
            })
    }
}
