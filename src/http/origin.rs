//! The cross-site guard of the HTTP routes: every unsafe method from a page that may not act
//! here is refused before any other work (the rule: [`crate::peer::origin`]).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::chat::Chat;
use crate::peer::origin::check;

/// Middleware: refuses unsafe methods from another site before any other work.
pub(crate) async fn refuse_cross_site(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    if !req.method().is_safe()
        && let Some(state) = req.app_data::<web::Data<Chat>>()
    {
        check(req.request(), &state.settings.server)?;
    }
    next.call(req).await
}
