//! Sessions: the login guard extractor, the session middleware on the shared Redis pool, and
//! password hashing.

mod current;
pub mod middleware;
pub mod password;

pub use current::{CurrentSession, start_login};
