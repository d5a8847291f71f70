//! Statistical evidence (dudect, Reparaz et al. 2016) that `Verifier::verify` takes as long
//! for a forged signature that is almost right as for one that is entirely wrong.
//!
//! Each comparison times `Verifier::verify` on one fixed 1 KiB body with forged signatures
//! from two classes, interleaved at random, and runs Welch's t-test on the two timing
//! distributions (cropped at several percentiles). A max |t| above about 4.5-5 is evidence of
//! a timing difference; below, there is none at the number of measurements taken. Every
//! measurement verifies under a secret of its own, so that no signature string repeats (see
//! `Setup` for why that matters).
//!
//! | comparison        | left class                        | right class                      |
//! |-------------------|-----------------------------------|----------------------------------|
//! | `first_vs_last`   | the MAC with its first byte wrong | the MAC with its last byte wrong |
//! | `first_vs_random` | the MAC with its first byte wrong | 32 random bytes                  |
//! | `last_vs_random`  | the MAC with its last byte wrong  | 32 random bytes                  |
//! | `leaky_control`   | first byte wrong, compared with an early-exit loop | last byte wrong, same loop |
//!
//! `leaky_control` is the positive control: it does the same hashing, then compares with a
//! naive early-exit loop (not the crate's comparison), and shows the size of |t| this harness
//! finds for a leak of a few nanoseconds on the machine it runs on.
//!
//! Not compared, by design: signatures of the wrong length (they are refused by
//! `Signature::parse` before any MAC is computed, so they are much faster; that reveals only
//! the length the sender chose) and the right signature (success builds a `Verified`; a sender
//! who has the right MAC learns nothing from the timing).
//!
//! Run every comparison once (one batch of 200,000 measurements, a few seconds each):
//!
//! ```sh
//! cargo bench --bench constant_time
//! ```
//!
//! For stable t-values, run one comparison continuously: it adds a batch of measurements and
//! prints the max |t| over all of them after each batch, until interrupted (Ctrl-C):
//!
//! ```sh
//! cargo bench --bench constant_time -- --continuous first_vs_last
//! ```
//!
//! `--filter NAME` runs only the comparisons whose name contains NAME, and `--out FILE` writes
//! the raw timings as CSV.

use std::hint::black_box;
use std::path::PathBuf;

use dudect_bencher::ctbench::{BenchFn, BenchMetadata, BenchName, BenchOpts, run_benches_console};
use dudect_bencher::rand::{Rng, RngExt};
use dudect_bencher::{BenchRng, Class, CtRunner};
use propexo_webhooks::{Signature, Verifier};

/// Measurements per batch (per comparison), about a second of work.
const SAMPLES: usize = 200_000;
const BODY_LEN: usize = 1024;

/// How a forged signature differs from the body's MAC.
#[derive(Clone, Copy)]
enum Forgery {
    FirstByte,
    LastByte,
    Random,
}

/// The fixed body, and one verifier per measurement, each with its own secret and the MAC of
/// the body under it.
///
/// A fresh secret per measurement makes the signatures of every class fresh, uniformly
/// distributed hex strings, so that the classes differ only in how the signature relates to
/// the right MAC. With one secret, "first byte wrong" sends the same 62 hex digits again and
/// again: the CPU's branch predictor learns them, the hex parser gets faster on them, and
/// that shows up as a difference (|t| in the hundreds with one secret, near 50 with 1,024,
/// near 10 with 65,536 reused a few times each) that depends on the sender repeating itself,
/// not on the secret. Timing `Verifier::verify_parsed` alone shows no difference even then.
struct Setup {
    body: Vec<u8>,
    keys: Vec<(Verifier, [u8; 32])>,
}

impl Setup {
    fn new(rng: &mut BenchRng) -> Self {
        let printable = |rng: &mut BenchRng, len: usize| -> Vec<u8> {
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            bytes.iter().map(|byte| b'!' + byte % 94).collect()
        };
        let body = printable(rng, BODY_LEN);
        let keys = (0..SAMPLES)
            .map(|_| {
                let verifier = Verifier::new(printable(rng, 32)).expect("a valid secret");
                let mac = *verifier
                    .sign(&body)
                    .parse::<Signature>()
                    .expect("sign() gives a valid signature")
                    .as_bytes();
                (verifier, mac)
            })
            .collect();
        Self { body, keys }
    }

    /// For each secret in turn, a class drawn at random and a signature of that class.
    fn draw(&self, rng: &mut BenchRng, left: Forgery, right: Forgery) -> Vec<(Class, [u8; 32])> {
        self.keys
            .iter()
            .map(|(_, mac)| {
                let (class, forgery) = if rng.random::<bool>() {
                    (Class::Left, left)
                } else {
                    (Class::Right, right)
                };
                (class, forge(mac, forgery, rng))
            })
            .collect()
    }
}

/// A wrong signature of the given kind.
fn forge(mac: &[u8; 32], forgery: Forgery, rng: &mut BenchRng) -> [u8; 32] {
    let mut bytes = *mac;
    // A non-zero XOR mask always changes the byte.
    let mask = rng.random_range(1..=255u8);
    match forgery {
        Forgery::FirstByte => bytes[0] ^= mask,
        Forgery::LastByte => bytes[31] ^= mask,
        Forgery::Random => {
            rng.fill_bytes(&mut bytes);
            if bytes == *mac {
                bytes[0] ^= mask;
            }
        }
    }
    bytes
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Times `Verifier::verify` on the signatures of two classes, interleaved at random.
fn compare(runner: &mut CtRunner, rng: &mut BenchRng, left: Forgery, right: Forgery) {
    let setup = Setup::new(rng);
    let inputs: Vec<(Class, String)> = setup
        .draw(rng, left, right)
        .iter()
        .map(|(class, forged)| (*class, hex(forged)))
        .collect();
    for ((verifier, _), (class, signature)) in setup.keys.iter().zip(&inputs) {
        runner.run_one(*class, || {
            let result = verifier.verify(black_box(&setup.body), black_box(signature));
            assert!(result.is_err(), "a forged signature verified");
            result
        });
    }
}

fn first_vs_last(runner: &mut CtRunner, rng: &mut BenchRng) {
    compare(runner, rng, Forgery::FirstByte, Forgery::LastByte);
}

fn first_vs_random(runner: &mut CtRunner, rng: &mut BenchRng) {
    compare(runner, rng, Forgery::FirstByte, Forgery::Random);
}

fn last_vs_random(runner: &mut CtRunner, rng: &mut BenchRng) {
    compare(runner, rng, Forgery::LastByte, Forgery::Random);
}

/// The positive control: the same work (hashing the body under the drawn secret), then an
/// early-exit comparison that stops at the first differing byte, first byte wrong vs last byte
/// wrong. It must show a large |t|; if it does not, the machine is too noisy for the other
/// comparisons to mean anything.
fn leaky_control(runner: &mut CtRunner, rng: &mut BenchRng) {
    let setup = Setup::new(rng);
    let inputs = setup.draw(rng, Forgery::FirstByte, Forgery::LastByte);
    for ((verifier, _), (class, forged)) in setup.keys.iter().zip(&inputs) {
        runner.run_one(*class, || {
            let computed = verifier.sign(black_box(&setup.body));
            let computed = computed
                .parse::<Signature>()
                .expect("sign() gives a valid signature");
            early_exit_eq(computed.as_bytes(), black_box(forged))
        });
    }
}

/// What not to do: returns at the first differing byte.
fn early_exit_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if black_box(*x) != black_box(*y) {
            return false;
        }
    }
    true
}

/// Parses dudect-bencher's options, ignoring the `--bench` flag that `cargo bench` adds.
fn options() -> BenchOpts {
    let mut opts = BenchOpts::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--continuous" => {
                opts.continuous = true;
                opts.filter = args.next();
            }
            "--filter" => opts.filter = args.next(),
            "--out" => opts.file_out = args.next().map(PathBuf::from),
            filter if !filter.starts_with('-') => opts.filter = Some(filter.to_owned()),
            other => {
                eprintln!(
                    "unknown option {other}; use --continuous NAME, --filter NAME or --out FILE"
                );
                std::process::exit(2);
            }
        }
    }
    opts
}

fn main() {
    let benches: [(&'static str, BenchFn); 4] = [
        ("first_vs_last", first_vs_last),
        ("first_vs_random", first_vs_random),
        ("last_vs_random", last_vs_random),
        ("leaky_control", leaky_control),
    ];
    let benches = benches
        .into_iter()
        .map(|(name, benchfn)| BenchMetadata {
            name: BenchName(name),
            seed: None,
            benchfn,
        })
        .collect();
    run_benches_console(options(), benches).expect("writing to stdout");
}
