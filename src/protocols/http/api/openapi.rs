//! The OpenAPI 3 document at `/api/v1/openapi.json`, generated from the handlers' annotations
//! and the types they take and return, so it cannot drift from the code.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, audit, error, files, keys, tokens, web};

#[derive(OpenApi)]
#[openapi(
    info(title = "ferry API", description = "Files and sessions of a ferry server."),
    paths(
        files::get_root, files::get_path, files::put_path, files::post_form, files::post_form_root, files::delete_path, files::make_folder,
        files::rename, files::copy, tokens::issue, tokens::revoke, web::login, web::logout, web::me,
        keys::create, keys::list, keys::revoke, admin::list_users, admin::create_user,
        admin::get_user, admin::update_user, admin::delete_user, admin::set_password,
        admin::add_ssh_key, admin::remove_ssh_key, admin::health, admin::list_sessions,
        admin::end_session, audit::query
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&Security),
    security(("basic" = []), ("bearer" = []), ("api_key" = []))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::new("X-API-Key"),
            )),
        );
    }
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
