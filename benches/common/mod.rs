//! Realistic Propexo bodies shared by the benchmarks.

use std::fmt::Write;

/// A lease DATA_UPDATE in the envelope form, exactly `len` bytes long.
///
/// Small bodies (under 4 KiB) carry what a routine update carries: a status change, new dates,
/// a new balance, `last_seen`. Large ones are a lease being hydrated after a partial DATA_NEW:
/// every lease field goes from `null` to a value, with the residents' metadata and the PMS's
/// custom fields, the bulk of a large record. A free-text note fills the body to the exact size.
///
/// # Panics
///
/// If `len` is too small for the routine update (about 1000 bytes).
pub(crate) fn lease_update(len: usize) -> Vec<u8> {
    let hydration = len >= 4096;
    let mut custom_fields = 0;
    if hydration {
        // Grow the custom fields in steps, then one by one, up to the size asked.
        for step in [64, 8, 1] {
            while lease_update_with(true, custom_fields + step, 0).len() < len {
                custom_fields += step;
            }
        }
    }
    let base = lease_update_with(hydration, custom_fields, 0).len();
    let pad = len
        .checked_sub(base)
        .unwrap_or_else(|| panic!("a lease DATA_UPDATE needs at least {base} bytes"));
    let body = lease_update_with(hydration, custom_fields, pad);
    assert_eq!(body.len(), len);
    body.into_bytes()
}

fn lease_update_with(hydration: bool, custom_fields: usize, note_len: usize) -> String {
    let (new, previous) = if hydration {
        hydrated_lease(custom_fields, note_len)
    } else {
        routine_change(note_len)
    };
    format!(
        concat!(
            r#"{{"trigger":"DATA_UPDATE","data":{{"event":"DATA_UPDATE","#,
            r#""job_id":"clz8job00000001","root_job_id":"clz8root0000001","#,
            r#""integration_id":"cly301lrc000009jvbp6vaz7i","job_type":"READ_LEASES","#,
            r#""vendor":"ENTRATA","record_id":"clz8lease0000001","object":"leases","#,
            r#""diff":{{"new":{new},"previous":{previous}}},"#,
            r#""context":{{"property_id":"clz8prop0000001"}}}},"#,
            r#""meta":{{"object":"leases","integration_id":"cly301lrc000009jvbp6vaz7i"}}}}"#,
        ),
        new = new,
        previous = previous,
    )
}

/// A lease approved and moved in: ten keys change.
fn routine_change(note_len: usize) -> (String, String) {
    let new = format!(
        concat!(
            r#"{{"status_normalized":"ACTIVE","status_raw":"Current","#,
            r#""updated_at":"2024-10-01T06:00:12.000Z","last_seen":"2024-10-01T06:00:00.000Z","#,
            r#""realized_move_in_date":"2024-10-01","signature_date":"2024-09-28","#,
            r#""balance_amount_in_cents":185000,"balance_amount_raw":"1850.00","#,
            r#""unit_id":"clz8unit0000042","#,
            r#""custom_data":{{"move_in_note":"{note}"}}}}"#,
        ),
        note = filler(note_len),
    );
    let previous = concat!(
        r#"{"status_normalized":"PENDING","status_raw":"Applicant","#,
        r#""updated_at":"2024-09-30T06:00:09.000Z","last_seen":"2024-09-30T06:00:00.000Z","#,
        r#""realized_move_in_date":null,"signature_date":null,"#,
        r#""balance_amount_in_cents":0,"balance_amount_raw":"0.00","#,
        r#""unit_id":null,"custom_data":null}"#,
    )
    .to_owned();
    (new, previous)
}

/// A lease hydrated after a partial DATA_NEW: every field goes from `null` to a value.
fn hydrated_lease(custom_fields: usize, note_len: usize) -> (String, String) {
    const FIELDS: [(&str, &str); 36] = [
        ("x_id", r#""t0012345""#),
        ("x_property_id", r#""p001""#),
        ("x_resident_id", r#""t0012345-1""#),
        ("x_unit_id", r#""u0420""#),
        ("application_date", r#""2024-08-14""#),
        ("deposit_amount", r#""1850.00""#),
        ("deposit_amount_in_cents", "185000"),
        ("deposit_date", r#""2024-09-28""#),
        ("end_date", r#""2025-09-30""#),
        ("realized_move_in_date", r#""2024-10-01""#),
        ("realized_move_out_date", "null"),
        ("rent_amount_in_cents", "185000"),
        ("rent_amount_market_in_cents", "192500"),
        ("rent_due_day", "1"),
        ("rent_due_date", r#""2024-11-01""#),
        ("scheduled_move_in_date", r#""2024-10-01""#),
        ("scheduled_move_out_date", r#""2025-09-30""#),
        ("signature_date", r#""2024-09-28""#),
        ("start_date", r#""2024-10-01""#),
        ("status", r#""current""#),
        ("status_normalized", r#""ACTIVE""#),
        ("status_raw", r#""Current""#),
        ("term", r#""12 months""#),
        ("type", r#""Conventional""#),
        ("unit_number", r#""420""#),
        ("write_off_amount_in_cents", "0"),
        ("write_off_amount_raw", r#""0.00""#),
        ("balance_amount_in_cents", "185000"),
        ("balance_amount_raw", r#""1850.00""#),
        ("past_due_balance_in_cents", "0"),
        ("past_due_balance_raw", r#""0.00""#),
        ("unit_id", r#""clz8unit0000042""#),
        ("property_id", r#""clz8prop0000001""#),
        ("integration_vendor", r#""ENTRATA""#),
        ("updated_at", r#""2024-10-01T06:00:12.000Z""#),
        ("last_seen", r#""2024-10-01T06:00:00.000Z""#),
    ];
    let mut new = String::from("{");
    let mut previous = String::from("{");
    for (key, value) in FIELDS {
        let old = match key {
            "updated_at" => r#""2024-09-30T06:00:09.000Z""#,
            "last_seen" => r#""2024-09-30T06:00:00.000Z""#,
            _ => "null",
        };
        let _ = write!(new, r#""{key}":{value},"#);
        let _ = write!(previous, r#""{key}":{old},"#);
    }
    new.push_str(r#""residents_meta_data":["#);
    for (n, kind) in ["PRIMARY", "SECONDARY", "SECONDARY", "GUARANTOR"]
        .into_iter()
        .enumerate()
    {
        let comma = if n == 0 { "" } else { "," };
        let _ = write!(
            new,
            concat!(
                r#"{comma}{{"resident_id":"clz8res000000{n}","x_resident_type":"{kind_lower}","#,
                r#""resident_type_normalized":"{kind}","move_in_date":"2024-10-01","#,
                r#""move_out_date":null,"notice_date":null,"custom_data":{{"portal_user":{portal}}}}}"#,
            ),
            comma = comma,
            n = n,
            kind = kind,
            kind_lower = kind.to_lowercase(),
            portal = n < 2,
        );
    }
    new.push_str(r#"],"custom_data":{"#);
    for n in 0..custom_fields {
        let _ = write!(
            new,
            r#""udf_{n:04}":{{"label":"Custom field {n}","value":"value {n} set by the property","updated":"2024-09-2{d}"}},"#,
            d = n % 10,
        );
    }
    let _ = write!(new, r#""notes":"{}"}}}}"#, filler(note_len));
    previous.push_str(r#""residents_meta_data":[],"custom_data":null}"#);
    (new, previous)
}

/// `len` bytes of plain note text, no escapes.
fn filler(len: usize) -> String {
    const TEXT: &str = "Resident asked for a second parking permit and a pet addendum. ";
    TEXT.chars().cycle().take(len).collect()
}
