//! The embedded vector store's durability: what was acknowledged survives a restart, a torn
//! write at the end of the log is cut off cleanly, and compaction keeps everything.

use std::fs::OpenOptions;
use std::io::Write;

use aurora_actors::local::EmbeddedStore;
use aurora_actors::ports::{ChunkRecord, CollectionSpec, Filter, NewChunk, VectorStore};

fn spec() -> CollectionSpec {
    CollectionSpec {
        embedder: "test".into(),
        dimension: 4,
    }
}

fn chunk(i: u32, text: &str) -> NewChunk {
    let mut embedding = vec![0.0; 4];
    embedding[(i % 4) as usize] = 1.0;
    NewChunk {
        record: ChunkRecord {
            id: format!("doc#{i}"),
            text: text.to_string(),
            source_url: format!("https://site.test/{}", i / 10),
            title: "T".into(),
            heading: String::new(),
            chunk_index: i,
            content_hash: "h".into(),
            fetched_at: 1,
            crawl_id: None,
            locator: None,
            file_name: None,
        },
        embedding,
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.create_collection("docs", &spec()).await.unwrap();
        store
            .upsert(
                "docs",
                (0..20)
                    .map(|i| chunk(i, &format!("chunk number {i} about aurora")))
                    .collect(),
            )
            .await
            .unwrap();
        store
            .delete("docs", &Filter::source_url("https://site.test/1"))
            .await
            .unwrap();
        store
            .upsert("docs", vec![chunk(3, "replaced text about borealis")])
            .await
            .unwrap();
        store.create_collection("empty", &spec()).await.unwrap();
        store.create_collection("gone", &spec()).await.unwrap();
        assert!(store.delete_collection("gone").await.unwrap());
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let names: Vec<String> = store
        .list_collections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["docs", "empty"]);
    assert_eq!(store.collection("docs").await.unwrap().unwrap().chunks, 10);
    let hits = store
        .lexical_search("docs", "borealis", 5, &Filter::default())
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chunk.id, "doc#3");
    let dense = store
        .dense_search("docs", &[0.0, 1.0, 0.0, 0.0], 3, &Filter::default())
        .await
        .unwrap();
    assert_eq!(dense.len(), 3);
    assert!(dense.iter().all(|h| h.score > 0.99));
}

#[tokio::test]
async fn a_torn_write_at_the_end_of_the_log_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.create_collection("docs", &spec()).await.unwrap();
        store
            .upsert("docs", vec![chunk(0, "first"), chunk(1, "second")])
            .await
            .unwrap();
    }
    let log = dir.path().join("collections/docs/log.bin");
    let intact = std::fs::metadata(&log).unwrap().len();
    // A crash mid-append: a frame header promising more bytes than were written.
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
    drop(file);

    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.collection("docs").await.unwrap().unwrap().chunks, 2);
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        intact,
        "the torn tail is cut off"
    );
    // And the log keeps working after the repair.
    store.upsert("docs", vec![chunk(2, "third")]).await.unwrap();
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.collection("docs").await.unwrap().unwrap().chunks, 3);
}

#[tokio::test]
async fn a_corrupted_frame_stops_replay_there() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.create_collection("docs", &spec()).await.unwrap();
        store.upsert("docs", vec![chunk(0, "kept")]).await.unwrap();
        store
            .upsert("docs", vec![chunk(1, "damaged")])
            .await
            .unwrap();
    }
    // Flip one byte in the last frame's payload: its checksum no longer matches.
    let log = dir.path().join("collections/docs/log.bin");
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&log, bytes).unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let all = store.find("docs", &Filter::default(), 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
}

#[tokio::test]
async fn compaction_keeps_every_live_chunk() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Compact as soon as the log passes 4 KiB.
        let store = EmbeddedStore::open_with_compaction(dir.path(), 4096).unwrap();
        store.create_collection("docs", &spec()).await.unwrap();
        for round in 0..5 {
            let chunks = (0..30)
                .map(|i| chunk(i, &format!("round {round} text {i} lorem ipsum")))
                .collect();
            store.upsert("docs", chunks).await.unwrap();
        }
        store
            .delete("docs", &Filter::source_url("https://site.test/0"))
            .await
            .unwrap();
    }
    let snapshot = dir.path().join("collections/docs/snapshot.bin");
    assert!(snapshot.is_file(), "a snapshot was written");
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let all = store.find("docs", &Filter::default(), 100).await.unwrap();
    assert_eq!(all.len(), 20);
    assert!(
        all.iter().all(|r| r.text.starts_with("round 4")),
        "the latest version of each chunk"
    );
    let hits = store
        .lexical_search("docs", "round", 100, &Filter::default())
        .await
        .unwrap();
    assert_eq!(
        hits.len(),
        20,
        "the inverted index was rebuilt without the dead chunks"
    );
}
