//! Directory listings of an object store: one delimiter listing per page, so a huge folder is
//! never held whole. Names are decoded (`names`), markers hidden, and the data of a finished
//! `*.filepart` upload is listed under its temporary name (`parts`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use object_store::ObjectStore;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;

use super::names::{DIR_MARKER, Naming, decode};
use super::{ObjectStorage, store_error};
use crate::storage::{DirEntry, DirLister, EntryKind, Metadata, Result};

pub enum ListState {
    Start,
    Page(String),
    Done,
}

pub struct ObjectLister {
    pub store: Arc<dyn ObjectStore>,
    pub pages: Option<Arc<dyn PaginatedListStore>>,
    pub prefix: Path,
    pub state: ListState,
    pub ready: Vec<DirEntry>,
    /// Keys holding finished `*.filepart` uploads → the temporary names they list under.
    pub parts: HashMap<Path, String>,
    pub naming: Naming,
}

impl ObjectLister {
    fn entries(&self, result: object_store::ListResult) -> Vec<DirEntry> {
        let mut entries = Vec::new();
        for dir in result.common_prefixes {
            if let Some(name) = dir.filename() {
                entries.push(DirEntry {
                    name: decode(self.naming, name).into_owned(),
                    meta: ObjectStorage::dir_meta(),
                });
            }
        }
        for object in result.objects {
            let Some(name) = object.location.filename() else { continue };
            if name == DIR_MARKER || object.location == self.prefix {
                continue;
            }
            let name = match self.parts.get(&object.location) {
                Some(temporary) => temporary.clone(),
                None => decode(self.naming, name).into_owned(),
            };
            entries.push(DirEntry {
                name,
                meta: Metadata {
                    kind: EntryKind::File,
                    size: object.size,
                    modified: Some(SystemTime::from(object.last_modified)),
                    accessed: None,
                    mode: None,
                },
            });
        }
        entries
    }

    /// Fetches the next page (or, without paging support, the whole listing once).
    async fn fetch(&mut self) -> Result<()> {
        let token = match std::mem::replace(&mut self.state, ListState::Done) {
            ListState::Done => return Ok(()),
            ListState::Start => None,
            ListState::Page(token) => Some(token),
        };
        let Some(pages) = &self.pages else {
            let result = self.store.list_with_delimiter(Some(&self.prefix)).await.map_err(store_error)?;
            self.ready = self.entries(result);
            return Ok(());
        };
        let prefix =
            if self.prefix.as_ref().is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let options = PaginatedListOptions {
            delimiter: Some("/".into()),
            page_token: token,
            max_keys: Some(1000),
            ..PaginatedListOptions::default()
        };
        let page = pages
            .list_paginated((!prefix.is_empty()).then_some(prefix.as_str()), options)
            .await
            .map_err(store_error)?;
        if let Some(token) = page.page_token {
            self.state = ListState::Page(token);
        }
        self.ready = self.entries(page.result);
        Ok(())
    }
}

#[async_trait]
impl DirLister for ObjectLister {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>> {
        while self.ready.is_empty() && !matches!(self.state, ListState::Done) {
            self.fetch().await?;
        }
        let take = self.ready.len().min(max);
        Ok(self.ready.drain(..take).collect())
    }
}
