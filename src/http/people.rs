//! Public profiles and user search over HTTP; what a profile shows is
//! [`crate::chat::profiles`]'s rule.

use actix_web::{HttpResponse, web};

use crate::chat::Chat;

use crate::domain::UserId;
use crate::domain::UserName;
use crate::error::{AppError, AppResult};
use crate::http::pagination::Params;
use crate::session::CurrentSession;
use crate::store::mysql::users;
use crate::store::redis::counters;

/// The `rule` of a refused email lookup.
pub(crate) const EMAIL_LOOKUPS_RULE: &str = "email_lookups";
/// The window of `people.email_lookups_per_hour`.
const EMAIL_LOOKUP_WINDOW_SECS: u64 = 3600;
/// Longest `?q=`, in characters (longer than any user or nick name).
const SEARCH_MAX_CHARS: usize = 64;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").route(web::get().to(search)))
        .service(web::resource("/users/{id}").route(web::get().to(profile)));
}

/// A user id from a path; anything else is an unknown user.
pub(crate) fn path_user(raw: &str) -> AppResult<UserId> {
    UserId::parse(raw).ok_or_else(|| AppError::NotFound("no such user".into()))
}

async fn profile(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = path_user(&path)?;
    let user = users::find_by_id(&state.mysql, id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".into()))?;
    Ok(HttpResponse::Ok().json(state.profile_of(session.user_id, user).await?))
}

/// `?q=` searches (a prefix of the user or nick name, at least `people.search_min_chars`
/// characters, at most `people.search_max_results` matches); `?user_name=` and `?email=` are
/// exact lookups, the latter `people.email_lookups_per_hour` per caller. Listing everybody is
/// not offered: one of them is required.
async fn search(
    session: CurrentSession,
    state: web::Data<Chat>,
    params: Params,
) -> AppResult<HttpResponse> {
    let page = params.page()?;
    let people_settings = &state.settings.people;
    let (found, total) = if let Some(name) =
        params.get("user_name").filter(|v| !v.trim().is_empty())
    {
        // Compared as logins compare names; what is no valid user name names nobody.
        let found = match UserName::parse(name.trim().to_owned(), "user_name") {
            Ok(name) => users::find_by_name(&state.mysql, &name).await?,
            Err(_) => None,
        };
        page.slice(found.into_iter().collect())
    } else if let Some(email) = params.get("email").filter(|v| !v.trim().is_empty()) {
        // Each lookup counts, found or not: the limit is against harvesting addresses.
        counters::hit(
            &state.redis,
            &state
                .keys
                .counter(&format!("{EMAIL_LOOKUPS_RULE}:{}", session.user_id)),
            EMAIL_LOOKUPS_RULE,
            people_settings.email_lookups_per_hour.get(),
            EMAIL_LOOKUP_WINDOW_SECS,
        )
        .await?;
        let email = email.trim().to_lowercase();
        page.slice(
            users::find_by_email(&state.mysql, &email)
                .await?
                .into_iter()
                .collect(),
        )
    } else {
        let text = params.get("q").map(str::trim).unwrap_or("");
        let min = people_settings.search_min_chars.get();
        if text.is_empty() {
            return Err(AppError::validation(
                "q",
                "is required (or an exact user_name or email)",
            ));
        }
        let chars = text.chars().count();
        if chars < min {
            return Err(AppError::validation(
                "q",
                format!("must be at least {min} characters"),
            ));
        }
        if chars > SEARCH_MAX_CHARS {
            return Err(AppError::validation(
                "q",
                format!("must be at most {SEARCH_MAX_CHARS} characters"),
            ));
        }
        let ids =
            users::search_ids(&state.mysql, text, people_settings.search_max_results.get()).await?;
        let (shown, total) = page.slice(ids);
        (users::find_many(&state.mysql, &shown).await?, total)
    };
    let profiles = state.profiles(session.user_id, found).await?;
    Ok(HttpResponse::Ok().json(page.body("users", profiles, total)?))
}
