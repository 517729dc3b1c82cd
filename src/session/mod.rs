//! Sessions: the login guard extractor, the session middleware on the shared Redis pool,
//! and the device cookies that exempt known browsers from account lockouts.

mod current;
pub(crate) mod device;
pub(crate) mod middleware;

pub(crate) use current::{CurrentSession, start_login};
