//! Tests every [`Store`] must pass; each backend's tests call `run_all`.
//! Test support: panics (with the reason) on the first failure.

#![allow(missing_docs)]

use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{Store, StoreError, UploadOptions};

/// Runs every conformance check against an empty store.
pub async fn run_all(store: &dyn Store) {
    put_get_list_delete(store).await;
    overwrite_is_refused(store).await;
    multipart_complete_and_abort(store).await;
    missing_objects(store).await;
    get_is_bounded(store).await;
    list_many_in_order(store).await;
}

async fn read_all(store: &dyn Store, key: &str) -> Vec<u8> {
    let mut r = store.get_reader(key).await.unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).await.unwrap();
    v
}

pub async fn put_get_list_delete(store: &dyn Store) {
    store
        .put("t1/a/x", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    store.put("t1/b", Bytes::from_static(b"")).await.unwrap();
    assert_eq!(&store.get("t1/a/x", 5).await.unwrap()[..], b"hello");
    assert!(store.get("t1/b", 0).await.unwrap().is_empty());
    assert_eq!(read_all(store, "t1/a/x").await, b"hello");
    let keys: Vec<String> = store
        .list("t1/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["t1/a/x", "t1/b"]);
    let meta = store.list("t1/a").await.unwrap();
    assert_eq!(meta.len(), 1);
    assert_eq!(meta[0].size, 5);
    store.delete("t1/a/x").await.unwrap();
    store.delete("t1/a/x").await.unwrap();
    store.delete("t1/b").await.unwrap();
    assert!(store.list("t1/").await.unwrap().is_empty());
}

pub async fn overwrite_is_refused(store: &dyn Store) {
    store.put("t2/x", Bytes::from_static(b"one")).await.unwrap();
    let e = store
        .put("t2/x", Bytes::from_static(b"two"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
    assert_eq!(&store.get("t2/x", 100).await.unwrap()[..], b"one");
    store.delete("t2/x").await.unwrap();
}

pub async fn multipart_complete_and_abort(store: &dyn Store) {
    let mut up = store
        .put_multipart("t3/big", UploadOptions::default())
        .await
        .unwrap();
    let part: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    for _ in 0..7 {
        up.write(Bytes::from(part.clone())).await.unwrap();
    }
    // Not visible before completion.
    assert!(store.list("t3/").await.unwrap().is_empty());
    assert_eq!(up.complete().await.unwrap(), 7_000_000);
    let got = read_all(store, "t3/big").await;
    assert_eq!(got.len(), 7_000_000);
    assert_eq!(&got[..1_000_000], &part[..]);

    let mut up = store
        .put_multipart("t3/aborted", UploadOptions::default())
        .await
        .unwrap();
    up.write(Bytes::from(part.clone())).await.unwrap();
    up.abort().await.unwrap();
    let keys: Vec<String> = store
        .list("t3/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["t3/big"]);
    store.delete("t3/big").await.unwrap();
}

pub async fn missing_objects(store: &dyn Store) {
    assert!(matches!(
        store.get("t4/none", 100).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_reader("t4/none").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.list("t4/").await.unwrap().is_empty());
}

/// `get` returns an object up to its limit and refuses a larger one.
pub async fn get_is_bounded(store: &dyn Store) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    store.put("t6/x", Bytes::from(data.clone())).await.unwrap();
    assert_eq!(&store.get("t6/x", 100_000).await.unwrap()[..], &data[..]);
    assert_eq!(&store.get("t6/x", 1 << 20).await.unwrap()[..], &data[..]);
    match store.get("t6/x", 99_999).await {
        Err(StoreError::TooLarge { key, size, max, .. }) => {
            assert_eq!(key, "t6/x");
            assert_eq!(max, 99_999);
            assert!(matches!(size, None | Some(100_000)), "{size:?}");
        }
        other => panic!("a get over its limit gave {other:?}"),
    }
    store.delete("t6/x").await.unwrap();
}

pub async fn list_many_in_order(store: &dyn Store) {
    for i in 0..2500 {
        store
            .put(&format!("t5/{:02}/{i:05}", i % 7), Bytes::new())
            .await
            .unwrap();
    }
    let keys: Vec<String> = store
        .list("t5/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys.len(), 2500);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for k in keys {
        store.delete(&k).await.unwrap();
    }
}
