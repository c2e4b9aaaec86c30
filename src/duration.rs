//! ISO 8601 durations as the seeds write them (`PT30S`, `PT5M`, `P7D`).
//!
//! Only the designators that have a fixed length are accepted: weeks, days, hours, minutes and
//! seconds (with an optional fraction on the last field). Years and months have no fixed length
//! and are rejected with an error that says so. Nothing about what a duration is *for* belongs here:
//! range rules (for example `segment_length`) live in `config`.

use std::time::Duration;

/// Error for a string that is not an ISO 8601 duration of the supported form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not an ISO 8601 duration such as PT30S, PT5M or P7D: {why}")]
pub struct ParseDurationError {
    input: String,
    why: &'static str,
}

/// Parses an ISO 8601 duration (`P[nW][nD][T[nH][nM][n[.f]S]]`, ISO 8601-1:2019 section 5.5.2).
///
/// Returns the duration with nanosecond precision. Errors: empty, unknown designator, years or
/// months (`P1Y`, `P1M`: no fixed length), a fraction anywhere but on the last field, overflow.
pub fn parse_iso8601(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |why| ParseDurationError {
        input: input.to_owned(),
        why,
    };
    let rest = input
        .strip_prefix('P')
        .ok_or_else(|| err("it must start with P"))?;
    if rest.is_empty() || rest == "T" {
        return Err(err("it has no fields"));
    }
    let mut total_ns: u128 = 0;
    let mut in_time = false;
    let mut num = String::new();
    let mut seen_fraction = false;
    let mut last_rank = 0u8;
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' | ',' => {
                if seen_fraction {
                    return Err(err("only the last field may have a fraction"));
                }
                num.push(if c == ',' { '.' } else { c });
            }
            'T' => {
                if in_time || !num.is_empty() {
                    return Err(err("misplaced T"));
                }
                in_time = true;
            }
            _ => {
                let (unit_ns, rank): (u128, u8) = match (in_time, c) {
                    (false, 'W') => (7 * 86_400_000_000_000, 1),
                    (false, 'D') => (86_400_000_000_000, 2),
                    (true, 'H') => (3_600_000_000_000, 3),
                    (true, 'M') => (60_000_000_000, 4),
                    (true, 'S') => (1_000_000_000, 5),
                    (false, 'Y') | (false, 'M') => {
                        return Err(err("years and months have no fixed length; use days"))
                    }
                    _ => return Err(err("unknown or misplaced designator")),
                };
                if rank <= last_rank {
                    return Err(err("fields out of order or repeated"));
                }
                last_rank = rank;
                if num.is_empty() {
                    return Err(err("a designator without a number"));
                }
                let (int, frac) = match num.split_once('.') {
                    Some((i, f)) => {
                        seen_fraction = true;
                        (i, f)
                    }
                    None => (num.as_str(), ""),
                };
                if int.is_empty() || frac.contains('.') || (seen_fraction && frac.is_empty()) {
                    return Err(err("malformed number"));
                }
                let int: u128 = int.parse().map_err(|_| err("number too large"))?;
                let mut frac_ns: u128 = 0;
                let mut scale = unit_ns;
                for d in frac.chars().take(18) {
                    scale /= 10;
                    frac_ns += u128::from(d.to_digit(10).unwrap_or(0)) * scale;
                }
                total_ns = int
                    .checked_mul(unit_ns)
                    .and_then(|v| v.checked_add(frac_ns))
                    .and_then(|v| v.checked_add(total_ns))
                    .ok_or_else(|| err("number too large"))?;
                num.clear();
            }
        }
    }
    if !num.is_empty() {
        return Err(err("a number without a designator"));
    }
    if in_time && last_rank < 3 {
        return Err(err("T without hours, minutes or seconds"));
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| err("number too large"))?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

/// Formats a duration the way the seeds write them (`PT30S`, `PT1M30S`, `P7D`).
pub fn format_iso8601(d: Duration) -> String {
    let mut s = d.as_secs();
    let ns = d.subsec_nanos();
    let days = s / 86_400;
    s %= 86_400;
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::from("P");
    if days > 0 {
        out += &format!("{days}D");
    }
    if h > 0 || m > 0 || sec > 0 || ns > 0 || days == 0 {
        out.push('T');
        if h > 0 {
            out += &format!("{h}H");
        }
        if m > 0 {
            out += &format!("{m}M");
        }
        if sec > 0 || ns > 0 || (h == 0 && m == 0) {
            if ns > 0 {
                let frac = format!("{ns:09}");
                out += &format!("{sec}.{}S", frac.trim_end_matches('0'));
            } else {
                out += &format!("{sec}S");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_seed_forms() {
        assert_eq!(parse_iso8601("PT30S").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_iso8601("PT5M").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_iso8601("PT1M30S").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_iso8601("P7D").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(
            parse_iso8601("P1W").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_iso8601("P1DT2H").unwrap(), Duration::from_secs(93600));
        assert_eq!(parse_iso8601("PT0.5S").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_iso8601("PT1,25S").unwrap(),
            Duration::from_millis(1250)
        );
        assert_eq!(parse_iso8601("PT0S").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "P", "PT", "30S", "PT30", "P1Y", "P1M", "PT1S1M", "PT5M5M", "PTS", "P1H",
            "PT1.5M3S", "pt30s", "PT-1S", "PT1..2S",
        ] {
            assert!(parse_iso8601(bad).is_err(), "{bad} accepted");
        }
        let e = parse_iso8601("P1M").unwrap_err().to_string();
        assert!(e.contains("months"), "{e}");
    }

    #[test]
    fn format_round_trips() {
        for s in [
            "PT30S", "PT5M", "PT1M30S", "P7D", "PT0S", "PT0.25S", "P1DT2H",
        ] {
            assert_eq!(format_iso8601(parse_iso8601(s).unwrap()), s);
        }
    }
}
