//! Executes the "Checked examples" table of `docs/mapping.md`, exactly as
//! the paragraph above the table describes it: each SDP line goes into a
//! minimal audio offer (plus the row's `needs` lines), is mapped to Jingle,
//! the row's fragment must be found in the mapped `<content/>`, and mapped
//! back the SDP line must be in the result. The table is compiled in, so
//! editing it re-runs this test; a malformed row fails with its number.

use minidom::Element;
use std::collections::BTreeSet;
use stox_mapping::ids::Sid;
use stox_mapping::jingle::{Action, Jingle};
use stox_mapping::sdp::{SdpAuthor, SdpOrigin, jingle_to_sdp_offer, sdp_offer_to_jingle};

const MAPPING_MD: &str = include_str!("../../../docs/mapping.md");
const HEADING: &str = "## Checked examples";
const JINGLE_NS: &str = "urn:xmpp:jingle:1";

/// One table row, as written.
#[derive(Debug)]
struct Row {
    /// 1-based number among the table's data rows.
    number: usize,
    /// Line number in docs/mapping.md.
    line: usize,
    sdp: String,
    fragment: String,
    needs: Vec<String>,
}

/// The backtick-quoted values of a cell (`a`, `b` → [a, b]).
fn quoted(cell: &str) -> Result<Vec<String>, String> {
    if cell.matches('`').count() % 2 == 1 {
        return Err(format!("unbalanced backticks in {cell:?}"));
    }
    let mut values = Vec::new();
    for (i, part) in cell.split('`').enumerate() {
        if i % 2 == 1 {
            values.push(part.to_owned());
        } else if !part.trim().trim_matches(',').trim().is_empty() {
            return Err(format!("text outside backticks in {cell:?}"));
        }
    }
    Ok(values)
}

/// Cells of a `| a | b | c |` line, splitting on `|` outside backticks.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut in_code = false;
    for ch in inner.chars() {
        match ch {
            '`' => {
                in_code = !in_code;
                out.last_mut().expect("one cell at least").push(ch);
            }
            '|' if !in_code => out.push(String::new()),
            _ => out.last_mut().expect("one cell at least").push(ch),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The table's rows; `Err((row, why))` for the first malformed one.
fn rows(md: &str) -> Result<Vec<Row>, (usize, String)> {
    let lines: Vec<&str> = md.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == HEADING)
        .ok_or((0, format!("no '{HEADING}' section")))?;
    let mut table = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .skip_while(|(_, l)| !l.trim_start().starts_with('|'))
        .take_while(|(_, l)| l.trim_start().starts_with('|'));
    let header = table.next().ok_or((0, "no table".to_owned()))?;
    let header = cells(header.1);
    if header != ["SDP line", "Jingle fragment", "needs"] {
        return Err((0, format!("unexpected header {header:?}")));
    }
    let separator = table.next().ok_or((0, "no separator line".to_owned()))?;
    if !cells(separator.1).iter().all(|c| c.starts_with("---")) {
        return Err((0, "second table line is not a separator".to_owned()));
    }
    let mut out = Vec::new();
    for (number, (index, line)) in table.enumerate() {
        let number = number + 1;
        let bad = |why: String| (number, format!("line {}: {why}", index + 1));
        let c = cells(line);
        if c.len() != 3 {
            return Err(bad(format!("{} cells, expected 3", c.len())));
        }
        let sdp = quoted(&c[0]).map_err(&bad)?;
        let fragment = quoted(&c[1]).map_err(&bad)?;
        let needs = quoted(&c[2]).map_err(&bad)?;
        let (Ok([sdp]), Ok([fragment])) = (
            <[String; 1]>::try_from(sdp),
            <[String; 1]>::try_from(fragment),
        ) else {
            return Err(bad(
                "SDP line and fragment must be one `value` each".to_owned()
            ));
        };
        if sdp.trim().is_empty() || fragment.trim().is_empty() {
            return Err(bad("empty SDP line or fragment".to_owned()));
        }
        out.push(Row {
            number,
            line: index + 1,
            sdp,
            fragment,
            needs,
        });
    }
    if out.is_empty() {
        return Err((0, "the table has no rows".to_owned()));
    }
    Ok(out)
}

/// The minimal audio offer of the paragraph above the table, with the
/// row's `needs` lines and its own line (each once; `b=` before `a=`).
fn offer(row: &Row) -> String {
    let mut lines: Vec<String> = vec![
        "v=0".into(),
        "o=- 1 1 IN IP4 192.0.2.1".into(),
        "s=-".into(),
        "t=0 0".into(),
        "m=audio 4000 RTP/AVP 0 8 96 101".into(),
        "c=IN IP4 192.0.2.1".into(),
    ];
    let mut attributes: Vec<String> = vec![
        "a=rtpmap:96 opus/48000/2".into(),
        "a=rtpmap:101 telephone-event/8000".into(),
    ];
    for extra in row.needs.iter().chain(std::iter::once(&row.sdp)) {
        let extra = extra.trim().to_owned();
        if lines.contains(&extra) || attributes.contains(&extra) {
            continue;
        }
        if extra.starts_with("b=") {
            lines.push(extra);
        } else {
            attributes.push(extra);
        }
    }
    lines.extend(attributes);
    lines.push(String::new());
    lines.join("\r\n")
}

/// Does `candidate` (or one of its descendants) match `fragment`: same
/// name, namespace and listed attributes, and every child of the fragment
/// matches one of the candidate's children?
fn matches(fragment: &Element, el: &Element) -> bool {
    el.name() == fragment.name()
        && el.ns() == fragment.ns()
        && fragment.attrs().iter().all(|((ns, name), value)| {
            el.attrs()
                .iter()
                .any(|((n2, name2), v2)| n2 == ns && name2 == name && v2 == value)
        })
        && fragment
            .children()
            .all(|f| el.children().any(|c| matches(f, c)))
}

fn found(fragment: &Element, el: &Element) -> bool {
    matches(fragment, el) || el.children().any(|c| found(fragment, c))
}

/// A line with its whitespace runs collapsed.
fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `a=fmtp:<pt> <params>` → (pt, parameter set).
fn fmtp(line: &str) -> Option<(String, BTreeSet<String>)> {
    let rest = line.strip_prefix("a=fmtp:")?;
    let (pt, params) = rest.split_once(' ').unwrap_or((rest, ""));
    let set = params
        .split([';', ','])
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    Some((pt.to_owned(), set))
}

fn line_present(sdp: &str, wanted: &str) -> bool {
    let wanted = normalise(wanted);
    let want_fmtp = fmtp(&wanted);
    sdp.lines().map(normalise).any(|l| match &want_fmtp {
        Some(f) => fmtp(&l).as_ref() == Some(f),
        None => l == wanted,
    })
}

/// Runs one row; `Err` says what went wrong.
fn check(row: &Row) -> Result<(), String> {
    let fragment: Element = row
        .fragment
        .parse()
        .map_err(|e| format!("fragment does not parse: {e}"))?;
    let sdp = offer(row);
    let mapped = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator)
        .map_err(|e| format!("offer does not map: {e}\n{sdp}"))?;
    let mut jingle = Jingle::new(Action::SessionInitiate, Sid::new("doc-table"));
    jingle.contents = mapped.contents;
    jingle.groups = mapped.groups;
    let element = jingle.to_element();
    let content = element
        .children()
        .find(|c| c.is("content", JINGLE_NS))
        .ok_or_else(|| format!("no <content/> in the mapped Jingle\n{sdp}"))?;
    if !found(&fragment, content) {
        return Err(format!(
            "fragment {} not in the mapped content:\n{}",
            row.fragment,
            String::from(content)
        ));
    }
    let back = Jingle::parse(&element).map_err(|e| format!("mapped Jingle does not parse: {e}"))?;
    let origin = SdpOrigin {
        username: "-".to_owned(),
        session_id: 1,
        session_version: 1,
    };
    let written = jingle_to_sdp_offer(&back.contents, &back.groups, SdpAuthor::Initiator, &origin)
        .map_err(|e| format!("Jingle does not map back: {e}"))?;
    if !line_present(&written, &row.sdp) {
        return Err(format!(
            "'{}' not in the SDP mapped back:\n{written}",
            row.sdp
        ));
    }
    Ok(())
}

#[test]
fn checked_examples_table() {
    let rows = rows(MAPPING_MD)
        .unwrap_or_else(|(row, why)| panic!("docs/mapping.md checked examples, row {row}: {why}"));
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            check(row).err().map(|why| {
                format!(
                    "row {} (docs/mapping.md line {}, `{}`): {why}",
                    row.number, row.line, row.sdp
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} checked examples fail:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}

#[test]
fn malformed_rows_are_reported_with_their_number() {
    let md = |rows: &str| {
        format!("{HEADING}\n\n| SDP line | Jingle fragment | needs |\n|---|---|---|\n{rows}")
    };
    let good = "| `a=rtcp-mux` | `<rtcp-mux xmlns='urn:xmpp:jingle:apps:rtp:1'/>` | |\n";
    assert!(rows(&md(good)).is_ok());
    let missing_cell = format!("{good}| `a=sendonly` | `<content/>` |\n");
    assert_eq!(rows(&md(&missing_cell)).err().map(|e| e.0), Some(2));
    let unquoted = format!("{good}{good}| a=sendonly | `<content/>` | |\n");
    assert_eq!(rows(&md(&unquoted)).err().map(|e| e.0), Some(3));
    // A fragment that is not XML is caught when the row runs.
    let bad_xml = rows(&md("| `a=rtcp-mux` | `<rtcp-mux` | |\n")).expect("well-formed row");
    let err = check(&bad_xml[0]).expect_err("unparsable fragment");
    assert!(err.contains("fragment does not parse"), "{err}");
    // A row whose mapping is not what the code does fails.
    let wrong = rows(&md(
        "| `a=sendonly` | `<content xmlns='urn:xmpp:jingle:1' senders='responder'/>` | |\n",
    ))
    .expect("well-formed row");
    assert!(check(&wrong[0]).is_err());
}
