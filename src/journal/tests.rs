use super::*;

fn contents(journal: &Journal) -> Vec<Bytes> {
    journal
        .scan_all()
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn payloads(items: &[&'static str]) -> Vec<Bytes> {
    items
        .iter()
        .map(|s| Bytes::from_static(s.as_bytes()))
        .collect()
}

#[tokio::test]
async fn appends_are_read_back_in_order_across_segments_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let small = JournalOptions {
        segment_bytes: 40,
        ..Default::default()
    };
    {
        let journal = Journal::open(dir.path(), small.clone()).unwrap();
        for chunk in [["a", "bb"], ["ccc", "dddd"], ["e", "f"]] {
            journal.append(payloads(&chunk)).await.unwrap();
        }
    }
    let journal = Journal::open(dir.path(), small).unwrap();
    let all = contents(&journal);
    assert_eq!(all, payloads(&["a", "bb", "ccc", "dddd", "e", "f"]));
    assert!(segment_path(dir.path(), 2).exists(), "segments rolled");
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_the_journal_stays_writable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
        journal.append(payloads(&["one", "two"])).await.unwrap();
    }
    let seg = segment_path(dir.path(), 1);
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    journal.append(payloads(&["three"])).await.unwrap();
    let all = contents(&journal);
    assert_eq!(all, payloads(&["one", "three"]));
}

/// A SIGKILL (or a power cut) in the middle of a group commit leaves any prefix of the batch's
/// bytes on disk. Cut at every byte: what earlier commits made durable is intact, of the torn
/// batch only whole records survive (none of them was acknowledged, so either way is allowed),
/// and the journal takes new appends after it.
#[tokio::test]
async fn a_kill_at_any_byte_of_a_group_commit_keeps_every_earlier_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (first, torn) = (
        payloads(&["one", "two"]),
        payloads(&["three", "four", "five"]),
    );
    let seg = segment_path(dir.path(), 1);
    let committed = {
        let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
        journal.append(first.clone()).await.unwrap();
        let committed = fs::metadata(&seg).unwrap().len();
        journal.append(torn.clone()).await.unwrap();
        committed
    };
    let whole = fs::read(&seg).unwrap();
    let mut survivors = 0;
    for cut in committed..=whole.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment_path(dir.path(), 1), &whole[..cut as usize]).unwrap();
        let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
        let all = contents(&journal);
        let (kept, rest) = all.split_at(first.len());
        assert_eq!(kept, first, "cut at byte {cut}");
        assert_eq!(
            rest,
            &torn[..rest.len()],
            "cut at byte {cut}: a prefix of the batch"
        );
        assert!(
            rest.len() >= survivors,
            "cut at byte {cut}: more bytes keep no fewer records"
        );
        survivors = rest.len();
        journal.append(payloads(&["after"])).await.unwrap();
        assert_eq!(
            contents(&journal).last().unwrap(),
            "after",
            "cut at byte {cut}"
        );
    }
    assert_eq!(
        survivors,
        torn.len(),
        "the whole batch survives the last cut"
    );
}

#[tokio::test]
async fn damage_in_an_older_segment_is_reported_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = JournalOptions {
        segment_bytes: 1,
        ..Default::default()
    };
    {
        let journal = Journal::open(dir.path(), tiny.clone()).unwrap();
        journal.append(payloads(&["one"])).await.unwrap();
        journal.append(payloads(&["two"])).await.unwrap();
    }
    let seg = segment_path(dir.path(), 1);
    let mut data = fs::read(&seg).unwrap();
    *data.last_mut().unwrap() ^= 0xff;
    fs::write(&seg, data).unwrap();
    let journal = Journal::open(dir.path(), tiny).unwrap();
    let err = journal.scan_all().unwrap_err();
    assert!(err.to_string().contains("is damaged at offset 0"), "{err}");
}

#[tokio::test]
async fn a_second_opener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let err = Journal::open(dir.path(), JournalOptions::default())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("in use by another ordergrid process"),
        "{err}"
    );
}

#[tokio::test]
async fn rolling_then_removing_keeps_only_newer_segments() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    journal.append(payloads(&["old"])).await.unwrap();
    let from = journal.roll().await.unwrap();
    journal.append(payloads(&["new"])).await.unwrap();
    assert_eq!(journal.remove_before(from).unwrap(), 1);
    let all = contents(&journal);
    assert_eq!(all, payloads(&["new"]));
}

#[tokio::test]
async fn read_from_stops_at_the_durable_end_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let start = journal.durable_end();
    journal.append(payloads(&["a", "b"])).await.unwrap();
    let (frames, next) = journal.read_from(start, 1).unwrap();
    assert_eq!(
        frames.len(),
        1,
        "max_bytes limits the read to one frame here"
    );
    let (frames, end) = journal.read_from(next, 1024).unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(end, journal.durable_end());
    assert!(journal.read_from(end, 1024).unwrap().0.is_empty());
}
