//! The REST API under `/api/v1`, one file per resource, and its OpenAPI document.
//! The resources reach the room's shared parts (state, authentication, errors) as `super::…`.

pub(super) mod admin;
pub(super) mod audit;
pub(super) mod files;
pub(super) mod keys;
pub(super) mod openapi;
pub(super) mod tokens;

use super::listen::deadlines;
use super::{AppState, auth, error, range, web};
