//! What one user sees of another: what anybody may see, plus the viewer's own view of the
//! relation (friend, remark) and whether the user is online: presence only to the user's
//! contacts (friends, members of a shared group) unless `privacy.online_visible_to` is
//! `everyone`; to anybody else `online` is always false.

use serde::Serialize;

use crate::chat::Chat;
use crate::config::OnlineVisibility;
use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::store::mysql::relations;
use crate::store::mysql::users::User;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Profile {
    pub id: UserId,
    pub user_name: String,
    pub nick_name: String,
    pub avatar: String,
    pub sex: u8,
    pub online: bool,
    pub is_friend: bool,
    pub remark: Option<String>,
}

impl Chat {
    /// Profiles of these users as `viewer` sees them, in the same order.
    pub(crate) async fn profiles(
        &self,
        viewer: UserId,
        users: Vec<User>,
    ) -> AppResult<Vec<Profile>> {
        let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
        let (relations, online) = tokio::try_join!(
            relations::relations(&self.mysql, viewer, &ids),
            self.online_as_seen_by(viewer, &ids),
        )?;
        Ok(users
            .into_iter()
            .zip(online)
            .map(|(user, online)| {
                let relation = relations.get(&user.id).cloned().unwrap_or_default();
                Profile {
                    id: user.id,
                    user_name: user.user_name,
                    nick_name: user.nick_name,
                    avatar: user.avatar,
                    sex: user.sex,
                    online,
                    is_friend: relation.is_friend,
                    remark: relation.remark,
                }
            })
            .collect())
    }

    /// Whether each of `users` is online, as `viewer` may know it: true only for a user online
    /// now whom the viewer may watch (themselves, a friend, a member of a group they are both in,
    /// or anyone under `privacy.online_visible_to = "everyone"`).
    pub(crate) async fn online_as_seen_by(
        &self,
        viewer: UserId,
        users: &[UserId],
    ) -> AppResult<Vec<bool>> {
        let contacts = async {
            match self.settings.privacy.online_visible_to {
                OnlineVisibility::Everyone => Ok(None),
                OnlineVisibility::Contacts => relations::contacts_among(&self.mysql, viewer, users)
                    .await
                    .map(Some),
            }
        };
        let (online, contacts) = tokio::try_join!(self.hub.online_many(users), contacts)?;
        Ok(users
            .iter()
            .zip(online)
            .map(|(user, online)| {
                online && (*user == viewer || contacts.as_ref().is_none_or(|c| c.contains(user)))
            })
            .collect())
    }

    pub(crate) async fn profile_of(&self, viewer: UserId, user: User) -> AppResult<Profile> {
        self.profiles(viewer, vec![user])
            .await?
            .pop()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("profile vanished")))
    }
}
