//! The applicant's HTML pages (REG-1…10). Being written.

use std::sync::Arc;

use actix_web::web;

use crate::identification::Identification;
use crate::registration::Registrar;

/// The pages under `/registrazione`. `secure_cookies`: the applicant's
/// cookie is `Secure` (production, behind TLS).
pub fn routes(
    registrar: Arc<Registrar>,
    identification: Arc<Identification>,
    secure_cookies: bool,
) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let _ = (registrar, identification, secure_cookies);
    move |_cfg: &mut web::ServiceConfig| {}
}
