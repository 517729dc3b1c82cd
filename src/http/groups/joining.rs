//! Getting into a group: joining, additions by members, the managers' decisions on join
//! requests.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::{GroupPath, MESSAGE_MAX_CHARS, group_path, text_field};
use crate::chat::Chat;
use crate::chat::groups::{Addition, Joined};
use crate::domain::{GroupId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::json::{JsonBody, OptionalJsonBody};
use crate::http::pagination::MyPage;
use crate::http::replies::{Admission, RequestReply};
use crate::session::CurrentSession;
use crate::store::mysql::invitations::Invitation;

#[derive(Deserialize, Default)]
pub(super) struct JoinBody {
    #[serde(default)]
    message: Option<String>,
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn join(
    session: CurrentSession,
    state: web::Data<Chat>,
    body: OptionalJsonBody<JoinBody>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let body = body.0.unwrap_or_default();
    let message = body
        .message
        .as_deref()
        .map(|m| text_field(m, "message", 0, MESSAGE_MAX_CHARS))
        .transpose()?
        .filter(|m| !m.is_empty());
    match state.join_group(session.user_id, group, message).await? {
        Joined::Joined => Ok(HttpResponse::Ok().json(Admission {
            status: "joined",
            ..Admission::default()
        })),
        Joined::Pending(request) => Ok(HttpResponse::Accepted().json(Admission {
            status: "pending",
            request: Some(request),
            ..Admission::default()
        })),
    }
}

#[derive(Deserialize)]
pub(super) struct UserBody {
    pub(super) user_id: UserId,
}

/// The answer to an addition of `user` to `group` (also the answer to an accepted invitation,
/// which then carries it).
pub(crate) fn addition_response(
    addition: Addition,
    group: GroupId,
    user: UserId,
    invitation: Option<Invitation>,
) -> HttpResponse {
    let member = |status| Admission {
        status,
        group_id: Some(group),
        user_id: Some(user),
        ..Admission::default()
    };
    let (accepted, mut body) = match addition {
        Addition::Member => (false, member("member")),
        Addition::Joined => (false, member("joined")),
        Addition::Pending(request) => (
            true,
            Admission {
                status: "pending",
                request: Some(request),
                ..Admission::default()
            },
        ),
        Addition::Invited(invitation) => (
            true,
            Admission {
                status: "invited",
                invitation: Some(invitation),
                ..Admission::default()
            },
        ),
    };
    if invitation.is_some() {
        body.invitation = invitation;
    }
    if accepted {
        HttpResponse::Accepted().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// An addition by a member: a friend of theirs at once (or as a join request), anybody else by
/// invitation (see [`crate::http::invitations`]).
#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn invite(
    session: CurrentSession,
    state: web::Data<Chat>,
    JsonBody(body): JsonBody<UserBody>,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let addition = state
        .add_member(session.user_id, group, body.user_id)
        .await?;
    Ok(addition_response(addition, group, body.user_id, None))
}

pub(super) async fn requests(
    state: web::Data<Chat>,
    mine: MyPage,
    GroupPath(group): GroupPath,
) -> AppResult<HttpResponse> {
    let page = mine.page;
    let (requests, total) = state
        .join_requests(mine.user, group, page.limit, page.offset)
        .await?;
    Ok(HttpResponse::Ok().json(page.body("requests", requests, total)?))
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
pub(super) async fn decide(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<(String, String, String)>,
) -> AppResult<HttpResponse> {
    let (raw_group, raw_request, decision) = path.into_inner();
    let accept = match decision.as_str() {
        "accept" => true,
        "reject" => false,
        _ => return Err(AppError::NotFound("no such route".into())),
    };
    let group = group_path(&raw_group)?;
    let request: u64 = raw_request
        .parse()
        .map_err(|_| AppError::NotFound("no such join request".into()))?;
    let decided = state
        .decide_request(session.user_id, group, request, accept)
        .await?;
    Ok(HttpResponse::Ok().json(RequestReply { request: decided }))
}
