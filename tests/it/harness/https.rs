//! HTTPS requests as a user: the client trusts the test server's certificate and every request
//! carries the user's Basic credentials, so a test reads as who does what:
//! `let put = srv.https_as("web", "web-pass-1").put("/api/v1/files/a.txt").body("x").await;`

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Response};

use super::TestServer;

/// One user's view of an HTTPS API: paths are relative to `base` (`https://host:port`).
#[derive(Clone)]
pub struct HttpsUser {
    client: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl TestServer {
    /// Requests to this server's HTTPS listener as `user`, with `password` (Basic auth).
    pub fn https_as(&self, user: &str, password: &str) -> HttpsUser {
        let base = format!("https://localhost:{}", self.https.port());
        HttpsUser::new(self.https_client(), &base, user, password)
    }
}

impl HttpsUser {
    /// For a server the harness did not start (a replica, a child process) or a client of
    /// its own (HTTP/1.1 only, another CA).
    pub fn new(client: reqwest::Client, base: &str, user: &str, password: &str) -> Self {
        Self { client, base: base.to_string(), user: user.to_string(), password: password.to_string() }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn put(&self, path: &str) -> Call {
        self.request(Method::PUT, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Call {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// `path` starts with `/` and may carry a query.
    pub fn request(&self, method: Method, path: &str) -> Call {
        let url = format!("{}{path}", self.base);
        let what = format!("{method} {url} as {}", self.user);
        let builder = self.client.request(method, url).basic_auth(&self.user, Some(&self.password));
        Call { builder, what }
    }
}

/// A request being built; `.await` (or `.send()`) sends it and yields the response, whatever
/// its status. Only a request that got no response at all fails the test.
pub struct Call {
    builder: reqwest::RequestBuilder,
    what: String,
}

impl Call {
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self.builder.body(body);
        self
    }

    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.builder = self.builder.json(value);
        self
    }

    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<axum::http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<axum::http::Error>,
    {
        self.builder = self.builder.header(name, value);
        self
    }

    pub async fn send(self) -> Response {
        let Self { builder, what } = self;
        builder.send().await.unwrap_or_else(|e| panic!("{what}: no response: {e}"))
    }
}

impl IntoFuture for Call {
    type Output = Response;
    type IntoFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
