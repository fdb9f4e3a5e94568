//! Checker throughput on real RDB files: CRC-64 alone, then the full
//! streaming check (CRC + structure), fed in 256 KiB chunks as the replica
//! driver does; then the two halves restore runs on two threads (4 MiB
//! pieces): the check with its content checks deferred, and those checks;
//! then the opt-in per-key work of a cluster: the check with every key's
//! slot checked (`Checker::with_slots`, all slots), and a re-split into
//! three outputs (`cluster::Resplit`, outputs discarded). A file with keys
//! outside database 0 shows `-` for those two. Best of three runs per
//! file, in MB/s (10^6 bytes).
//!
//! `bench/checker.sh` makes large RDB files with a real redis-server and runs
//! this; by hand: `cargo bench -p replvault-protocol --bench check_throughput
//! -- FILE.rdb...`.

use std::time::Instant;

use replvault_protocol::cluster::{Resplit, SlotSet};
use replvault_protocol::crc64::Crc64;
use replvault_protocol::rdb::Checker;

const CHUNK: usize = 256 * 1024;
/// A restore's decoded piece: one zstd frame.
const PIECE: usize = 4 << 20;

fn best_of_3(mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if files.is_empty() {
        eprintln!("usage: check_throughput FILE.rdb... (bench/checker.sh makes them)");
        return;
    }
    println!(
        "| file | MB | CRC-64 only MB/s | check (CRC + structure) MB/s | check, content deferred MB/s | deferred checks MB/s | keys | check with slots MB/s | re-split in 3 MB/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for path in files {
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            }
        };
        let mb = data.len() as f64 / 1e6;
        let crc = best_of_3(|| {
            let mut c = Crc64::new();
            for piece in data.chunks(CHUNK) {
                c.update(piece);
            }
            std::hint::black_box(c.value());
        });
        let mut keys = 0;
        let check = best_of_3(|| {
            let mut s = Checker::new();
            for piece in data.chunks(CHUNK) {
                if let Err(e) = s.feed(piece) {
                    eprintln!("{path}: {e}");
                    std::process::exit(1);
                }
            }
            match s.finish() {
                Ok(sum) => keys = sum.total_keys(),
                Err(e) => {
                    eprintln!("{path}: {e}");
                    std::process::exit(1);
                }
            }
        });
        let mut deferred = Vec::new();
        let split = best_of_3(|| {
            let mut s = Checker::new();
            deferred.clear();
            for piece in data.chunks(PIECE) {
                let (d, fed) = s.feed_deferring(piece);
                if let Err(e) = fed {
                    eprintln!("{path}: {e}");
                    std::process::exit(1);
                }
                deferred.push(d);
            }
            std::hint::black_box(s.finish().is_ok());
        });
        let checks = best_of_3(|| {
            for (d, piece) in deferred.iter().zip(data.chunks(PIECE)) {
                if let Err(e) = d.check(piece) {
                    eprintln!("{path}: {e}");
                    std::process::exit(1);
                }
            }
        });
        // Cluster work: `None` when the file is not a cluster's (keys
        // outside database 0).
        let mut cluster_ok = true;
        let slots = best_of_3(|| {
            let mut s = Checker::with_slots(SlotSet::all());
            let fed = data.chunks(CHUNK).try_for_each(|piece| s.feed(piece));
            cluster_ok &= fed.is_ok() && s.finish().is_ok();
        });
        let resplit = best_of_3(|| {
            let Ok(mut r) = Resplit::new(3) else {
                cluster_ok = false;
                return;
            };
            let mut out = 0usize;
            let fed = data
                .chunks(CHUNK)
                .try_for_each(|piece| r.feed(piece, &mut |_, b| out += b.len()));
            cluster_ok &= fed.is_ok() && r.finish(&mut |_, b| out += b.len()).is_ok();
            std::hint::black_box(out);
        });
        let cluster = |t: f64| {
            if cluster_ok {
                format!("{:.0}", mb / t)
            } else {
                "-".to_string()
            }
        };
        let name = std::path::Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(path.clone());
        println!(
            "| {name} | {mb:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {keys} | {} | {} |",
            mb / crc,
            mb / check,
            mb / split,
            mb / checks,
            cluster(slots),
            cluster(resplit)
        );
    }
}
