//! Keyset pagination of listings: `?limit=&cursor=` in, `{"items": [...], "next"}` out. A
//! cursor is the base64url of the last item's sort key, opaque to clients.

use crate::error::ApiError;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;

/// Items per page unless the caller asks for fewer.
pub const DEFAULT_PAGE: u32 = 50;
/// Items per page at most.
pub const MAX_PAGE: u32 = 500;

/// One page of a listing: `{"items": [...], "next": CURSOR|null}`; `next` fetches the page
/// after this one (`?cursor=`), and is null on the last page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Cursor of the next page, if there is one.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The page of `items` fetched with `limit`: a full page has a next one, after the sort
    /// key `key` gives its last item.
    pub fn new(items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let next = (items.len() == limit as usize).then(|| items.last().map(|i| URL_SAFE_NO_PAD.encode(key(i))));
        Self { next: next.flatten(), items }
    }
}

/// The sort key a cursor names, `None` without one. Keys never hold control characters (a
/// NUL would reach SQL, which PostgreSQL's text refuses).
///
/// # Errors
/// 400 for a cursor this API did not hand out.
pub fn after(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(cursor) = cursor else { return Ok(None) };
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|key| !key.chars().any(char::is_control))
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("cursor: use the `next` value of the previous page".into()))
}

/// The page size asked for, checked.
///
/// # Errors
/// 400 outside 1 to [`MAX_PAGE`].
pub fn size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        n => Err(ApiError::BadRequest(format!("limit: {n} is not between 1 and {MAX_PAGE}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_names_its_last_key_and_the_cursor_gives_it_back() {
        let page = Page::new(vec!["a", "b"], 2, |s| s.to_string());
        assert_eq!(after(page.next.as_deref()).unwrap().as_deref(), Some("b"));
        assert_eq!(Page::new(vec!["a"], 2, |s| s.to_string()).next, None);
        assert_eq!(after(None).unwrap(), None);
        assert_eq!(after(Some("%")).unwrap_err().status().as_u16(), 400);
        assert_eq!(after(Some(&URL_SAFE_NO_PAD.encode("\0"))).unwrap_err().status().as_u16(), 400);
        assert_eq!(size(Some(0)).unwrap_err().status().as_u16(), 400);
    }
}
