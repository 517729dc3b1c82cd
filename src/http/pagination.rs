//! Lists: `?limit=` (default 20, at most 100) and `?offset=`, answered as
//! `{"<items>": [...], "total", "offset", "limit", "has_more"}`.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::session::CurrentSession;

pub(crate) const DEFAULT_LIMIT: i64 = 20;
pub(crate) const MAX_LIMIT: i64 = 100;

/// A page of a list of the caller's: their session, then the page asked for (so a request
/// without a session is 401 before a bad query is 400).
pub(crate) struct MyPage {
    pub user: UserId,
    pub page: Page,
    pub params: Params,
}

impl actix_web::FromRequest for MyPage {
    type Error = AppError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let session = CurrentSession::from_request(req, payload);
        let params = Params::from_request(req, payload).into_inner();
        Box::pin(async move {
            let user = session.await?.user_id;
            let params = params?;
            let page = params.page()?;
            Ok(Self { user, page, params })
        })
    }
}

/// The query string of a request, with typed access.
pub(crate) struct Params(pub HashMap<String, String>);

impl actix_web::FromRequest for Params {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            actix_web::web::Query::<HashMap<String, String>>::from_query(req.query_string())
                .map(|q| Self(q.into_inner()))
                .map_err(|e| AppError::BadRequest(format!("query string: {e}").into())),
        )
    }
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn page(&self) -> AppResult<Page> {
        let limit = match self.get("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if n >= 1 => n.min(MAX_LIMIT),
                _ => {
                    return Err(AppError::validation(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let offset = match self.get("offset") {
            None => 0,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => {
                    return Err(AppError::validation(
                        "offset",
                        "must be a whole number of at least 0",
                    ));
                }
            },
        };
        Ok(Page { limit, offset })
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// The list body for this page of `total` items.
    pub(crate) fn body<T: Serialize>(
        self,
        key: &str,
        items: Vec<T>,
        total: i64,
    ) -> AppResult<Value> {
        let shown = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let mut body = Map::new();
        body.insert(
            key.to_owned(),
            serde_json::to_value(items)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("list body: {e}")))?,
        );
        body.insert("total".into(), total.into());
        body.insert("offset".into(), self.offset.into());
        body.insert("limit".into(), self.limit.into());
        body.insert("has_more".into(), (self.offset + shown < total).into());
        Ok(Value::Object(body))
    }

    /// A page of a list already in memory.
    pub(crate) fn slice<T>(self, mut all: Vec<T>) -> (Vec<T>, i64) {
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        let start = usize::try_from(self.offset)
            .unwrap_or(usize::MAX)
            .min(all.len());
        let mut rest = all.split_off(start);
        rest.truncate(usize::try_from(self.limit).unwrap_or(usize::MAX));
        (rest, total)
    }
}
