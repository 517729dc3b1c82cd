//! A member's own settings in a group (`PATCH /groups/{id}/me`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{GroupPath, NICKNAME_MAX_CHARS, REMARK_MAX_CHARS, text_field};
use crate::chat::Chat;
use crate::domain::GroupId;
use crate::error::AppResult;
use crate::http::json::JsonBody;
use crate::http::replies::{MySettings, SettingsReply};
use crate::session::CurrentSession;
use crate::store::mysql::groups::{Membership, SettingsChange};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsBody {
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default)]
    dnd: Option<bool>,
    #[serde(default)]
    folded: Option<bool>,
    #[serde(default)]
    show_in_contacts: Option<bool>,
}

fn settings_reply(group: GroupId, m: &Membership) -> SettingsReply {
    SettingsReply {
        settings: MySettings {
            group_id: group,
            nickname: m.nickname.clone(),
            remark: m.remark.clone(),
            dnd: m.dnd != 0,
            folded: m.folded != 0,
            show_in_contacts: m.show_in_contacts != 0,
        },
    }
}

/// An optional text setting: absent (no change), empty (cleared) or a value.
fn optional_text(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> AppResult<Option<Option<String>>> {
    value
        .map(|v| {
            let text = text_field(&v, field, 0, max)?;
            Ok((!text.is_empty()).then(|| text.to_owned()))
        })
        .transpose()
}

pub(super) async fn my_settings(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<SettingsBody>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let wanted = SettingsChange {
        nickname: optional_text(body.nickname, "nickname", NICKNAME_MAX_CHARS)?,
        remark: optional_text(body.remark, "remark", REMARK_MAX_CHARS)?,
        dnd: body.dnd,
        folded: body.folded,
        show_in_contacts: body.show_in_contacts,
    };
    let now = state
        .update_my_settings(session.user_id, group, wanted)
        .await?;
    Ok(HttpResponse::Ok().json(settings_reply(group, &now)))
}
