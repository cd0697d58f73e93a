//! Business-hours calendars and business-time arithmetic for SLA due times.
//!
//! A tenant (or a team) describes when its service desk works as a [`CalendarSpec`]: weekly
//! opening hours in one IANA time zone, holidays that close a whole local date, and make-up
//! workdays (China's 调休) that open a normally closed date. [`BusinessCalendar::new`] validates
//! a spec into a calendar that answers three questions: is it open at an instant, when have
//! `n` business seconds elapsed (an SLA due time), and how many business seconds lie between
//! two instants (elapsed SLA time). The module is pure: no I/O, no clock, no database.
//!
//! Semantics, all in the calendar's local time:
//! - Intervals are half-open `[start, end)`; `24:00` ends an interval at the next midnight.
//! - Daylight-saving time counts real elapsed time: an interval that spans a change lasts its
//!   real duration, a boundary inside a spring-forward gap moves to the end of the gap, and an
//!   ambiguous (fall-back) start takes the first occurrence while an ambiguous end takes the
//!   last, so the repeated hour is counted once for each time it really happens.
//! - A due time that lands exactly on a closing time is that closing time, not the next opening.
//! - Work is bounded: answers look at most [`HORIZON_DAYS`] ahead, and plain weeks (no holiday,
//!   no make-up day, no UTC-offset change) are skipped arithmetically.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc, Weekday,
};
use chrono_tz::{GapInfo, Tz};
use serde::{Deserialize, Serialize};

use crate::FieldError;

/// The time zone of a spec that names none.
pub const DEFAULT_TIMEZONE: &str = "Asia/Shanghai";

/// How far ahead (in days, about 20 years) a computation looks before giving up.
pub const HORIZON_DAYS: u64 = 20 * 366;

const DAY_SECONDS: u32 = 86_400;

/// One opening interval of a day, `"HH:MM"` to `"HH:MM"` (or `"24:00"`), half-open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// Opening time, `"00:00"`–`"23:59"`.
    pub start: String,
    /// Closing time, `"00:01"`–`"24:00"`; the instant itself is closed.
    pub end: String,
}

impl Interval {
    /// An interval from `start` to `end` (validated later, by [`BusinessCalendar::new`]).
    pub fn new(start: &str, end: &str) -> Self {
        Self {
            start: start.to_owned(),
            end: end.to_owned(),
        }
    }
}

/// Opening hours per weekday; a day that is missing or empty is closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeeklyHours {
    pub mon: Vec<Interval>,
    pub tue: Vec<Interval>,
    pub wed: Vec<Interval>,
    pub thu: Vec<Interval>,
    pub fri: Vec<Interval>,
    pub sat: Vec<Interval>,
    pub sun: Vec<Interval>,
}

impl WeeklyHours {
    /// The hours of `day`.
    pub fn on(&self, day: Weekday) -> &[Interval] {
        match day {
            Weekday::Mon => &self.mon,
            Weekday::Tue => &self.tue,
            Weekday::Wed => &self.wed,
            Weekday::Thu => &self.thu,
            Weekday::Fri => &self.fri,
            Weekday::Sat => &self.sat,
            Weekday::Sun => &self.sun,
        }
    }

    /// Replaces the hours of `day`.
    pub fn set(&mut self, day: Weekday, hours: Vec<Interval>) {
        let slot = match day {
            Weekday::Mon => &mut self.mon,
            Weekday::Tue => &mut self.tue,
            Weekday::Wed => &mut self.wed,
            Weekday::Thu => &mut self.thu,
            Weekday::Fri => &mut self.fri,
            Weekday::Sat => &mut self.sat,
            Weekday::Sun => &mut self.sun,
        };
        *slot = hours;
    }
}

/// The stored and admin-edited description of a business calendar (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// IANA time zone name, e.g. `Asia/Shanghai`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Weekly opening hours.
    #[serde(default)]
    pub hours: WeeklyHours,
    /// Local dates closed all day.
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
    /// Local dates open with `workday_hours`, whatever their weekday.
    #[serde(default)]
    pub workdays: Vec<NaiveDate>,
    /// Hours of make-up workdays; `None` means Monday's hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workday_hours: Option<Vec<Interval>>,
}

fn default_timezone() -> String {
    DEFAULT_TIMEZONE.to_owned()
}

impl CalendarSpec {
    /// Mon–Fri 09:00–18:00 Asia/Shanghai, no holidays (the tenant default at sign-up).
    pub fn default_office() -> Self {
        let mut hours = WeeklyHours::default();
        for day in [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ] {
            hours.set(day, vec![Interval::new("09:00", "18:00")]);
        }
        Self::with_hours(hours)
    }

    /// 24×7 in Asia/Shanghai.
    pub fn always_open() -> Self {
        let day = || vec![Interval::new("00:00", "24:00")];
        Self::with_hours(WeeklyHours {
            mon: day(),
            tue: day(),
            wed: day(),
            thu: day(),
            fri: day(),
            sat: day(),
            sun: day(),
        })
    }

    fn with_hours(hours: WeeklyHours) -> Self {
        Self {
            timezone: default_timezone(),
            hours,
            holidays: Vec::new(),
            workdays: Vec::new(),
            workday_hours: None,
        }
    }
}

impl Default for CalendarSpec {
    fn default() -> Self {
        Self::default_office()
    }
}

/// Open seconds-of-day `[start, end)`, `end` up to 86 400.
type DaySpan = (u32, u32);

/// A validated, ready-to-compute calendar.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    tz: Tz,
    /// Sorted, disjoint, non-touching spans per weekday, Monday first.
    week: [Vec<DaySpan>; 7],
    workday_hours: Vec<DaySpan>,
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    /// Nominal open time of a week, exact for weeks without DST changes or special dates.
    week_seconds: TimeDelta,
}

/// What a walk over open time is after.
#[derive(Clone, Copy)]
enum Goal {
    /// Stop once this much open time has elapsed.
    Elapse(TimeDelta),
    /// Count open time up to this instant.
    Until(DateTime<Utc>),
}

impl BusinessCalendar {
    /// Validates `spec`; every problem is reported, each with its field path and a fix.
    pub fn new(spec: &CalendarSpec) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let tz = match spec.timezone.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                errors.push(FieldError::new(
                    "timezone",
                    "unknown_timezone",
                    format!(
                        "`{}` is not an IANA time zone; use a name like `Asia/Shanghai` or \
                         `Europe/Berlin`",
                        spec.timezone
                    ),
                ));
                None
            }
        };

        let mut week: [Vec<DaySpan>; 7] = Default::default();
        for (slot, day) in week.iter_mut().zip(WEEKDAYS) {
            let path = format!("hours.{}", day_key(day));
            *slot = parse_day(&path, spec.hours.on(day), &mut errors);
        }
        let workday_hours = match &spec.workday_hours {
            Some(hours) => parse_day("workday_hours", hours, &mut errors),
            None => week[0].clone(),
        };
        let holidays = unique_dates("holidays", &spec.holidays, &mut errors);
        let workdays = unique_dates("workdays", &spec.workdays, &mut errors);
        let mut seen = BTreeSet::new();
        for (i, date) in spec.workdays.iter().enumerate() {
            if holidays.contains(date) && seen.insert(*date) {
                errors.push(FieldError::new(
                    format!("workdays[{i}]"),
                    "conflict",
                    format!("{date} is both a holiday and a make-up workday; remove it from one of the two lists"),
                ));
            }
        }

        // Judge emptiness on the spec, not on what parsed, so one bad time does not also
        // produce a misleading "never open".
        let weekly_open = WEEKDAYS.iter().any(|d| !spec.hours.on(*d).is_empty());
        let workday_open = spec
            .workday_hours
            .as_ref()
            .map_or(!spec.hours.mon.is_empty(), |h| !h.is_empty());
        if !spec.workdays.is_empty() && !workday_open {
            errors.push(FieldError::new(
                "workday_hours",
                "no_hours",
                "make-up workdays need hours, but `workday_hours` is empty and Monday is closed; \
                 set `workday_hours`, e.g. [{\"start\":\"09:00\",\"end\":\"18:00\"}]",
            ));
        } else if !weekly_open && spec.workdays.is_empty() {
            errors.push(FieldError::new(
                "hours",
                "never_open",
                "the calendar is never open; add opening hours to at least one weekday \
                 (or use a 24×7 calendar)",
            ));
        }

        match tz {
            Some(tz) if errors.is_empty() => {
                let week_seconds = week.iter().flatten().map(|(s, e)| i64::from(e - s)).sum();
                Ok(Self {
                    tz,
                    week,
                    workday_hours,
                    holidays,
                    workdays,
                    week_seconds: TimeDelta::seconds(week_seconds),
                })
            }
            _ => Err(errors),
        }
    }

    /// The calendar's time zone.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Whether `t` falls in business hours.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        // Around a fall-back the neighbouring dates' intervals can reach into this local date.
        let date = self.local_date(t);
        [date.pred_opt(), Some(date), date.succ_opt()]
            .into_iter()
            .flatten()
            .any(|d| self.day_spans(d).any(|(a, b)| a <= t && t < b))
    }

    /// The instant at which `seconds` of business time have elapsed after `start`.
    ///
    /// `0` (or less) returns `start` unchanged, even if closed. A target that lands exactly on
    /// a closing time returns that closing time. If the calendar has too little open time in
    /// the next [`HORIZON_DAYS`] (only possible for a calendar open solely on make-up days),
    /// returns `start` plus that horizon.
    pub fn add_business_seconds(&self, start: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
        if seconds <= 0 {
            return start;
        }
        // Beyond TimeDelta's range (~292 million years) the horizon answers anyway.
        let need = TimeDelta::try_seconds(seconds).unwrap_or(TimeDelta::MAX);
        self.walk(start, Goal::Elapse(need), true).0
    }

    /// Business seconds in `[a, b)` (0 when `b <= a`), counted at most [`HORIZON_DAYS`] past `a`.
    pub fn business_seconds_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
        if b <= a {
            return 0;
        }
        self.walk(a, Goal::Until(b), true).1.num_seconds()
    }

    /// Walks open time forward from `from`, returning where it stopped and the open time
    /// elapsed. `skip_weeks` exists so tests can check the shortcut against the plain walk.
    fn walk(
        &self,
        from: DateTime<Utc>,
        goal: Goal,
        skip_weeks: bool,
    ) -> (DateTime<Utc>, TimeDelta) {
        let horizon = from
            .checked_add_days(Days::new(HORIZON_DAYS))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let limit = match goal {
            Goal::Elapse(_) => horizon,
            Goal::Until(b) => b.min(horizon),
        };
        let mut elapsed = TimeDelta::zero();
        // Nothing before `cursor` counts; it also clips intervals that overlap in real time
        // (an ambiguous end of one date and an ambiguous start of the next around a fall-back).
        let mut cursor = from;
        // Start a day early: the previous date's intervals may still be running.
        let mut date = self.local_date(from);
        date = date.pred_opt().unwrap_or(date);
        loop {
            let midnight = self.resolve_start(date.and_time(NaiveTime::MIN));
            if midnight >= limit {
                break;
            }
            if skip_weeks && cursor <= midnight {
                if let Some(end) = self.plain_week_end(date, midnight) {
                    let fits = match goal {
                        Goal::Elapse(need) => need - elapsed > self.week_seconds,
                        Goal::Until(_) => end <= limit,
                    };
                    if let (true, Some(next)) = (fits, date.checked_add_days(Days::new(7))) {
                        elapsed += self.week_seconds;
                        cursor = end;
                        date = next;
                        continue;
                    }
                }
            }
            for (a, b) in self.day_spans(date) {
                let (a, b) = (a.max(cursor), b.min(limit));
                if b <= a {
                    continue;
                }
                if let Goal::Elapse(need) = goal {
                    if need - elapsed <= b - a {
                        return (a + (need - elapsed), need);
                    }
                }
                elapsed += b - a;
                cursor = b;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        (limit, elapsed)
    }

    /// If the seven local dates from `date` are ordinary (no holiday, no make-up day, one UTC
    /// offset throughout), the instant they end; their open time is then `week_seconds`.
    ///
    /// The offset is sampled just before `midnight` and at each following midnight: a change
    /// that is undone within the same day would slip through, but no zone in tzdb does that.
    fn plain_week_end(&self, date: NaiveDate, midnight: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let last = date.checked_add_days(Days::new(6))?;
        if self.holidays.range(date..=last).next().is_some()
            || self.workdays.range(date..=last).next().is_some()
        {
            return None;
        }
        let offset = |t: DateTime<Utc>| self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let first = offset(midnight);
        let before = midnight.checked_sub_signed(TimeDelta::seconds(1))?;
        let samples = std::iter::once(Some(before))
            .chain((1..=7).map(|k| midnight.checked_add_days(Days::new(k))));
        for t in samples {
            if offset(t?) != first {
                return None;
            }
        }
        midnight.checked_add_days(Days::new(7))
    }

    /// The open local spans of `date`.
    fn local_hours(&self, date: NaiveDate) -> &[DaySpan] {
        if self.holidays.contains(&date) {
            &[]
        } else if self.workdays.contains(&date) {
            &self.workday_hours
        } else {
            &self.week[date.weekday().num_days_from_monday() as usize]
        }
    }

    /// The open intervals of `date` as instants, in order of start (ends may overlap the
    /// next start around a fall-back; the walk clips them).
    fn day_spans(
        &self,
        date: NaiveDate,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        self.local_hours(date)
            .iter()
            .filter_map(move |&(start, end)| {
                let a = self.resolve_start(local_at(date, start)?);
                let b = self.resolve_end(local_at(date, end)?);
                (a < b).then_some((a, b))
            })
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// The first instant whose local time is `local` or later.
    fn resolve_start(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.to_utc(),
            LocalResult::Ambiguous(x, y) => x.min(y).to_utc(),
            LocalResult::None => self.gap_end(local),
        }
    }

    /// The last instant whose local time is `local` or earlier (the gap's end inside a gap).
    fn resolve_end(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.to_utc(),
            LocalResult::Ambiguous(x, y) => x.max(y).to_utc(),
            LocalResult::None => self.gap_end(local),
        }
    }

    /// The instant a spring-forward gap containing `local` ends.
    fn gap_end(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let info = GapInfo::new(&local, &self.tz);
        match info.as_ref().and_then(|g| g.end.as_ref()) {
            Some(end) => end.to_utc(),
            // Only at the edges of tzdb's range; reading the local time with the offset in
            // force there still lands past the gap, which is good enough.
            None => {
                let offset = self.tz.offset_from_utc_datetime(&local).fix();
                (local - TimeDelta::seconds(i64::from(offset.local_minus_utc()))).and_utc()
            }
        }
    }
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn day_key(day: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][day.num_days_from_monday() as usize]
}

/// `seconds` past local midnight of `date`; 86 400 is the next midnight.
fn local_at(date: NaiveDate, seconds: u32) -> Option<NaiveDateTime> {
    if seconds == DAY_SECONDS {
        return Some(date.succ_opt()?.and_time(NaiveTime::MIN));
    }
    Some(date.and_time(NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)?))
}

/// Parses strict 24-hour `HH:MM` into seconds since midnight; `24:00` only when `end`.
fn parse_hhmm(text: &str, end: bool) -> Option<u32> {
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    match text.as_bytes() {
        [h1, h2, b':', m1, m2] => {
            let hours = digit(*h1)? * 10 + digit(*h2)?;
            let minutes = digit(*m1)? * 10 + digit(*m2)?;
            match (hours, minutes) {
                (24, 0) if end => Some(DAY_SECONDS),
                (0..=23, 0..=59) => Some((hours * 60 + minutes) * 60),
                _ => None,
            }
        }
        _ => None,
    }
}

fn hhmm(seconds: u32) -> String {
    format!("{:02}:{:02}", seconds / 3600, seconds / 60 % 60)
}

/// Validates one day's intervals into sorted spans, merging ones that touch.
fn parse_day(path: &str, intervals: &[Interval], errors: &mut Vec<FieldError>) -> Vec<DaySpan> {
    let mut parsed = Vec::new();
    for (i, interval) in intervals.iter().enumerate() {
        let start = parse_hhmm(&interval.start, false);
        let end = parse_hhmm(&interval.end, true);
        for (value, field, limits) in [
            (start, "start", "00:00 to 23:59"),
            (end, "end", "00:01 to 24:00"),
        ] {
            if value.is_none() {
                let text = if field == "start" {
                    &interval.start
                } else {
                    &interval.end
                };
                errors.push(FieldError::new(
                    format!("{path}[{i}].{field}"),
                    "invalid_time",
                    format!("`{text}` is not a valid {field} time; use 24-hour HH:MM from {limits}, e.g. `09:00`"),
                ));
            }
        }
        match (start, end) {
            (Some(s), Some(e)) if e <= s => errors.push(FieldError::new(
                format!("{path}[{i}].end"),
                "empty_interval",
                format!(
                    "ends at {} but starts at {}; the end must be later than the start \
                     (use 24:00 for midnight and split overnight shifts across two days)",
                    interval.end, interval.start
                ),
            )),
            (Some(s), Some(e)) => parsed.push((s, e, i)),
            _ => {}
        }
    }
    parsed.sort_unstable();
    let mut spans: Vec<DaySpan> = Vec::new();
    let mut previous = None;
    // The interval reaching furthest so far, which is what a later start can overlap.
    let mut reach: Option<(u32, u32, usize)> = None;
    for (s, e, i) in parsed {
        if previous == Some((s, e)) {
            errors.push(FieldError::new(
                format!("{path}[{i}]"),
                "duplicate",
                format!("{}–{} is listed twice; remove the repeat", hhmm(s), hhmm(e)),
            ));
            continue;
        }
        previous = Some((s, e));
        if let Some((rs, re, ri)) = reach.filter(|r| s < r.1) {
            errors.push(FieldError::new(
                format!("{path}[{i}]"),
                "overlapping",
                format!(
                    "{}–{} overlaps {}–{} ({path}[{ri}]); merge them into one interval",
                    hhmm(s),
                    hhmm(e),
                    hhmm(rs),
                    hhmm(re)
                ),
            ));
        }
        if reach.is_none_or(|r| e > r.1) {
            reach = Some((s, e, i));
        }
        // Touching intervals (09:00–12:00, 12:00–18:00) become one span.
        match spans.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => spans.push((s, e)),
        }
    }
    spans
}

/// Collects `dates`, reporting repeats.
fn unique_dates(
    path: &str,
    dates: &[NaiveDate],
    errors: &mut Vec<FieldError>,
) -> BTreeSet<NaiveDate> {
    let mut set = BTreeSet::new();
    for (i, date) in dates.iter().enumerate() {
        if !set.insert(*date) {
            errors.push(FieldError::new(
                format!("{path}[{i}]"),
                "duplicate",
                format!("{date} is listed more than once; remove the repeat"),
            ));
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const H: i64 = 3600;

    fn calendar(spec: &CalendarSpec) -> BusinessCalendar {
        BusinessCalendar::new(spec).expect("valid calendar")
    }

    fn spec_in(tz: &str, hours: WeeklyHours) -> CalendarSpec {
        CalendarSpec {
            timezone: tz.to_owned(),
            hours,
            ..CalendarSpec::default_office()
        }
    }

    /// The same intervals on every day of the week.
    fn daily(intervals: &[(&str, &str)]) -> WeeklyHours {
        let mut hours = WeeklyHours::default();
        for day in WEEKDAYS {
            hours.set(
                day,
                intervals.iter().map(|(s, e)| Interval::new(s, e)).collect(),
            );
        }
        hours
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    /// `"2026-06-01 09:00[:ss]"` in the calendar's zone (must be unambiguous), or with a
    /// trailing `Z` in UTC.
    fn at(cal: &BusinessCalendar, s: &str) -> DateTime<Utc> {
        let (text, utc) = match s.strip_suffix('Z') {
            Some(text) => (text, true),
            None => (s, false),
        };
        let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
            .expect("datetime");
        if utc {
            local.and_utc()
        } else {
            let t = cal.tz.from_local_datetime(&local).single();
            t.expect("unambiguous local time").to_utc()
        }
    }

    /// Mon–Fri 09:00–12:00 and 13:00–18:00.
    fn lunch() -> CalendarSpec {
        let mut hours = WeeklyHours::default();
        for day in &WEEKDAYS[..5] {
            let split = vec![
                Interval::new("09:00", "12:00"),
                Interval::new("13:00", "18:00"),
            ];
            hours.set(*day, split);
        }
        spec_in("Asia/Shanghai", hours)
    }

    /// Office hours with China's 2026 National Day break and its make-up workdays.
    fn national_day() -> CalendarSpec {
        CalendarSpec {
            holidays: (1..=7).map(|d| date(&format!("2026-10-0{d}"))).collect(),
            workdays: vec![date("2026-09-27"), date("2026-10-10")],
            ..CalendarSpec::default_office()
        }
    }

    /// Every day 00:00–02:00 and 20:00–24:00 (a night shift spanning midnight).
    fn nights() -> CalendarSpec {
        spec_in(
            "Asia/Shanghai",
            daily(&[("00:00", "02:00"), ("20:00", "24:00")]),
        )
    }

    /// Berlin, every day 01:00–04:00 (straddles both DST changes) and 08:00–17:00.
    fn berlin() -> CalendarSpec {
        spec_in(
            "Europe/Berlin",
            daily(&[("01:00", "04:00"), ("08:00", "17:00")]),
        )
    }

    fn always_in(tz: &str) -> CalendarSpec {
        CalendarSpec {
            timezone: tz.to_owned(),
            ..CalendarSpec::always_open()
        }
    }

    #[test]
    fn add_business_seconds_cases() {
        let office = calendar(&CalendarSpec::default_office());
        let lunch = calendar(&lunch());
        let national = calendar(&national_day());
        let nights = calendar(&nights());
        let always = calendar(&CalendarSpec::always_open());
        let berlin = calendar(&berlin());
        let berlin_gap = calendar(&spec_in("Europe/Berlin", daily(&[("02:30", "05:00")])));
        let berlin_fold = calendar(&spec_in("Europe/Berlin", daily(&[("02:30", "03:30")])));
        let new_york = calendar(&always_in("America/New_York"));
        // 2026-06-01 is a Monday.
        let cases: &[(&str, &BusinessCalendar, &str, i64, &str)] = &[
            (
                "within one day",
                &office,
                "2026-06-01 10:00",
                2 * H,
                "2026-06-01 12:00",
            ),
            (
                "ends exactly at closing",
                &office,
                "2026-06-01 16:00",
                2 * H,
                "2026-06-01 18:00",
            ),
            (
                "across a night",
                &office,
                "2026-06-01 17:00",
                4 * H,
                "2026-06-02 12:00",
            ),
            (
                "across a weekend",
                &office,
                "2026-06-05 17:30",
                2 * H,
                "2026-06-08 10:30",
            ),
            (
                "from saturday",
                &office,
                "2026-06-06 10:00",
                H,
                "2026-06-08 10:00",
            ),
            (
                "before opening",
                &office,
                "2026-06-01 07:00",
                H,
                "2026-06-01 10:00",
            ),
            (
                "at closing",
                &office,
                "2026-06-01 18:00",
                1,
                "2026-06-02 09:00:01",
            ),
            (
                "zero while closed",
                &office,
                "2026-06-06 10:00",
                0,
                "2026-06-06 10:00",
            ),
            (
                "one full week",
                &office,
                "2026-06-01 09:00",
                45 * H,
                "2026-06-05 18:00",
            ),
            (
                "week plus a second",
                &office,
                "2026-06-01 09:00",
                45 * H + 1,
                "2026-06-08 09:00:01",
            ),
            (
                "500 hours",
                &office,
                "2026-01-05 09:00",
                500 * H,
                "2026-03-23 14:00",
            ),
            (
                "lunch: into lunch",
                &lunch,
                "2026-06-01 11:00",
                H,
                "2026-06-01 12:00",
            ),
            (
                "lunch: over lunch",
                &lunch,
                "2026-06-01 11:00",
                2 * H,
                "2026-06-01 14:00",
            ),
            (
                "lunch: from lunch",
                &lunch,
                "2026-06-01 12:30",
                1800,
                "2026-06-01 13:30",
            ),
            (
                "holiday week skipped",
                &national,
                "2026-09-30 17:00",
                2 * H,
                "2026-10-08 10:00",
            ),
            (
                "make-up sunday",
                &national,
                "2026-09-26 10:00",
                H,
                "2026-09-27 10:00",
            ),
            (
                "make-up saturday",
                &national,
                "2026-10-09 17:00",
                2 * H,
                "2026-10-10 10:00",
            ),
            (
                "through 24:00",
                &nights,
                "2026-06-06 23:00",
                2 * H,
                "2026-06-07 01:00",
            ),
            (
                "after a night shift",
                &nights,
                "2026-06-07 01:30",
                H,
                "2026-06-07 20:30",
            ),
            (
                "24x7",
                &always,
                "2026-06-05 17:30",
                2 * H,
                "2026-06-05 19:30",
            ),
            (
                "24x7 weekend",
                &always,
                "2026-06-06 10:00",
                48 * H,
                "2026-06-08 10:00",
            ),
            // Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST.
            (
                "berlin: over the gap",
                &berlin,
                "2026-03-29 01:30",
                H,
                "2026-03-29 03:30",
            ),
            (
                "berlin: gap day total",
                &berlin,
                "2026-03-29 01:00",
                2 * H + 1,
                "2026-03-29 08:00:01",
            ),
            (
                "berlin: opens at gap end",
                &berlin_gap,
                "2026-03-29 00:00",
                H,
                "2026-03-29 02:00Z",
            ),
            // ...and falls back 2026-10-25 03:00 CEST -> 02:00 CET.
            (
                "berlin: fold counted twice",
                &berlin,
                "2026-10-25 01:00",
                3 * H,
                "2026-10-25 02:00Z",
            ),
            (
                "berlin: fold day total",
                &berlin,
                "2026-10-25 01:00",
                4 * H,
                "2026-10-25 04:00",
            ),
            (
                "berlin: ambiguous bounds",
                &berlin_fold,
                "2026-10-25 00:00",
                2 * H,
                "2026-10-25 02:30Z",
            ),
            // Whole weeks over a DST change must not be skipped at their nominal 84 h.
            (
                "berlin: weeks over the gap",
                &berlin,
                "2026-03-23 01:00",
                167 * H,
                "2026-04-05 17:00",
            ),
            (
                "berlin: weeks over the fold",
                &berlin,
                "2026-10-19 01:00",
                167 * H,
                "2026-11-01 15:00",
            ),
            (
                "berlin: ordinary day",
                &berlin,
                "2026-10-26 03:00",
                2 * H,
                "2026-10-26 09:00",
            ),
            (
                "new york: spring forward",
                &new_york,
                "2026-03-08 00:00",
                3 * H,
                "2026-03-08 04:00",
            ),
            (
                "new york: fall back",
                &new_york,
                "2026-11-01 00:00",
                3 * H,
                "2026-11-01 02:00",
            ),
        ];
        for (name, cal, start, seconds, expected) in cases {
            let got = cal.add_business_seconds(at(cal, start), *seconds);
            assert_eq!(got, at(cal, expected), "{name}");
        }
    }

    #[test]
    fn business_seconds_between_cases() {
        let office = calendar(&CalendarSpec::default_office());
        let national = calendar(&national_day());
        let berlin = calendar(&berlin());
        let berlin_always = calendar(&always_in("Europe/Berlin"));
        let new_york = calendar(&always_in("America/New_York"));
        // Samoa skipped 2011-12-30 entirely when it crossed the date line.
        let apia = calendar(&always_in("Pacific/Apia"));
        let cases: &[(&str, &BusinessCalendar, &str, &str, i64)] = &[
            (
                "within a day",
                &office,
                "2026-06-01 10:00",
                "2026-06-01 11:30",
                5400,
            ),
            (
                "reversed",
                &office,
                "2026-06-01 11:30",
                "2026-06-01 10:00",
                0,
            ),
            ("empty", &office, "2026-06-01 10:00", "2026-06-01 10:00", 0),
            (
                "weekend",
                &office,
                "2026-06-05 17:00",
                "2026-06-08 10:00",
                2 * H,
            ),
            (
                "all closed",
                &office,
                "2026-06-06 00:00",
                "2026-06-08 09:00",
                0,
            ),
            (
                "four weeks",
                &office,
                "2026-06-01 00:00",
                "2026-06-29 00:00",
                180 * H,
            ),
            (
                "holiday week",
                &national,
                "2026-09-30 09:00",
                "2026-10-09 18:00",
                27 * H,
            ),
            (
                "with make-up days",
                &national,
                "2026-09-26 00:00",
                "2026-10-11 00:00",
                63 * H,
            ),
            (
                "berlin gap day",
                &berlin_always,
                "2026-03-29 00:00",
                "2026-03-30 00:00",
                23 * H,
            ),
            (
                "berlin fold day",
                &berlin_always,
                "2026-10-25 00:00",
                "2026-10-26 00:00",
                25 * H,
            ),
            (
                "berlin gap hours",
                &berlin,
                "2026-03-29 00:00",
                "2026-03-29 05:00",
                2 * H,
            ),
            (
                "berlin fold hours",
                &berlin,
                "2026-10-25 00:00",
                "2026-10-25 05:00",
                4 * H,
            ),
            (
                "new york gap day",
                &new_york,
                "2026-03-08 00:00",
                "2026-03-09 00:00",
                23 * H,
            ),
            (
                "new york fold day",
                &new_york,
                "2026-11-01 00:00",
                "2026-11-02 00:00",
                25 * H,
            ),
            (
                "apia lost day",
                &apia,
                "2011-12-29 00:00",
                "2011-12-31 00:00",
                24 * H,
            ),
        ];
        for (name, cal, a, b, expected) in cases {
            let got = cal.business_seconds_between(at(cal, a), at(cal, b));
            assert_eq!(got, *expected, "{name}");
        }
    }

    #[test]
    fn is_open_cases() {
        let office = calendar(&CalendarSpec::default_office());
        let national = calendar(&national_day());
        let nights = calendar(&nights());
        let berlin_gap = calendar(&spec_in("Europe/Berlin", daily(&[("02:30", "05:00")])));
        let cases: &[(&str, &BusinessCalendar, &str, bool)] = &[
            ("at opening", &office, "2026-06-01 09:00", true),
            ("before opening", &office, "2026-06-01 08:59:59", false),
            ("last second", &office, "2026-06-01 17:59:59", true),
            ("at closing", &office, "2026-06-01 18:00", false),
            ("saturday", &office, "2026-06-06 10:00", false),
            ("holiday thursday", &national, "2026-10-01 10:00", false),
            ("make-up sunday", &national, "2026-09-27 10:00", true),
            ("ordinary sunday", &national, "2026-10-11 10:00", false),
            (
                "midnight in a night shift",
                &nights,
                "2026-06-07 00:00",
                true,
            ),
            ("before 24:00", &nights, "2026-06-06 23:59:59", true),
            (
                "gap: before its end",
                &berlin_gap,
                "2026-03-29 00:59:59Z",
                false,
            ),
            ("gap: at its end", &berlin_gap, "2026-03-29 01:00:00Z", true),
        ];
        for (name, cal, t, expected) in cases {
            assert_eq!(cal.is_open(at(cal, t)), *expected, "{name}");
        }
    }

    #[test]
    fn large_durations_are_fast() {
        let office = calendar(&CalendarSpec::default_office());
        let start = at(&office, "2026-01-05 09:00");
        let year = 365 * 24 * H;
        let clock = Instant::now();
        let due = office.add_business_seconds(start, year);
        assert_eq!(office.business_seconds_between(start, due), year);
        // 365 days of business time at 45 h a week is 194⅔ weeks.
        assert!(due > at(&office, "2029-09-01 00:00") && due < at(&office, "2029-10-01 00:00"));
        assert!(
            clock.elapsed().as_millis() < 1000,
            "took {:?}",
            clock.elapsed()
        );
    }

    #[test]
    fn horizon_caps_calendars_that_run_out_of_open_time() {
        // Open only on one make-up day: any longer target can never be reached.
        let spec = CalendarSpec {
            hours: WeeklyHours::default(),
            workdays: vec![date("2026-09-27")],
            workday_hours: Some(vec![Interval::new("09:00", "18:00")]),
            ..CalendarSpec::default_office()
        };
        let cal = calendar(&spec);
        let start = at(&cal, "2026-09-01 00:00");
        let clock = Instant::now();
        let due = cal.add_business_seconds(start, 10 * H);
        assert_eq!(due, start + TimeDelta::days(HORIZON_DAYS as i64));
        assert_eq!(cal.business_seconds_between(start, due), 9 * H);
        assert_eq!(
            cal.add_business_seconds(start, 9 * H),
            at(&cal, "2026-09-27 18:00")
        );
        let office = calendar(&CalendarSpec::default_office());
        assert_eq!(office.add_business_seconds(start, i64::MAX), due);
        assert!(
            clock.elapsed().as_millis() < 2000,
            "took {:?}",
            clock.elapsed()
        );
    }

    /// splitmix64: deterministic pseudo-random numbers without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: i64) -> i64 {
            (self.next() % n as u64) as i64
        }
    }

    #[test]
    fn add_and_between_agree() {
        let mut holiday_lunch = lunch();
        holiday_lunch.holidays = national_day().holidays;
        holiday_lunch.workdays = national_day().workdays;
        let mut berlin_mixed = berlin();
        berlin_mixed.hours.sat = vec![Interval::new("02:30", "03:30")];
        berlin_mixed.hours.sun = vec![Interval::new("00:00", "24:00")];
        berlin_mixed.holidays = vec![date("2026-12-25"), date("2027-03-28")];
        let specs = [
            CalendarSpec::default_office(),
            holiday_lunch,
            nights(),
            berlin_mixed,
            always_in("America/New_York"),
            // Chile's DST changes happen at midnight, so local midnights go missing.
            spec_in(
                "America/Santiago",
                daily(&[("00:00", "06:00"), ("09:00", "24:00")]),
            ),
            // Lord Howe shifts by 30 minutes.
            spec_in("Australia/Lord_Howe", CalendarSpec::default_office().hours),
        ];
        let mut rng = Rng(0x5EED);
        let base = at(&calendar(&CalendarSpec::always_open()), "2026-01-01 00:00Z");
        for spec in &specs {
            let cal = calendar(spec);
            for _ in 0..400 {
                let start = base + TimeDelta::seconds(rng.below(2 * 366 * 24 * H));
                let seconds = match rng.below(4) {
                    0 => rng.below(H),
                    1 => rng.below(60 * H),
                    2 => rng.below(2000 * H),
                    _ => rng.below(3) * 45 * H,
                };
                let due = cal.add_business_seconds(start, seconds);
                let name = format!("{} from {start} + {seconds}s = {due}", spec.timezone);
                assert!(due >= start, "{name}");
                assert_eq!(cal.business_seconds_between(start, due), seconds, "{name}");
                // The week-skipping shortcut must agree with the plain day-by-day walk.
                let plain = cal.walk(start, Goal::Elapse(TimeDelta::seconds(seconds)), false);
                if seconds > 0 {
                    assert_eq!(plain.0, due, "plain walk: {name}");
                    assert!(
                        cal.is_open(due - TimeDelta::seconds(1)),
                        "last second: {name}"
                    );
                }
                let plain = cal.walk(start, Goal::Until(due), false).1.num_seconds();
                assert_eq!(plain, seconds, "plain between: {name}");
                // Business time is additive over any split point.
                let mid = start + TimeDelta::seconds(rng.below((due - start).num_seconds() + 1));
                let parts = cal.business_seconds_between(start, mid)
                    + cal.business_seconds_between(mid, due);
                assert_eq!(parts, seconds, "split at {mid}: {name}");
                // A second counts exactly when the calendar is open at its start.
                let open = i64::from(cal.is_open(start));
                let one = cal.business_seconds_between(start, start + TimeDelta::seconds(1));
                assert_eq!(one, open, "is_open: {name}");
                if open == 1 {
                    assert_eq!(
                        cal.add_business_seconds(start, 1),
                        start + TimeDelta::seconds(1)
                    );
                }
            }
        }
    }

    fn codes(spec: &CalendarSpec) -> Vec<(String, &'static str)> {
        match BusinessCalendar::new(spec) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.field, e.code)).collect(),
        }
    }

    /// Expected `(field, code)` pairs, in report order.
    type Expected = Vec<(&'static str, &'static str)>;

    #[test]
    fn validation_cases() {
        let office = CalendarSpec::default_office;
        let with_mon = |intervals: &[(&str, &str)]| {
            let mut spec = office();
            spec.hours.mon = intervals.iter().map(|(s, e)| Interval::new(s, e)).collect();
            spec
        };
        let cases: Vec<(&str, CalendarSpec, Expected)> = vec![
            ("default office", office(), vec![]),
            ("24x7", CalendarSpec::always_open(), vec![]),
            (
                "touching intervals",
                with_mon(&[("13:00", "18:00"), ("09:00", "13:00")]),
                vec![],
            ),
            ("ends at 24:00", with_mon(&[("20:00", "24:00")]), vec![]),
            (
                "unknown zone",
                CalendarSpec {
                    timezone: "Mars/Olympus".into(),
                    ..office()
                },
                vec![("timezone", "unknown_timezone")],
            ),
            (
                "bad end",
                with_mon(&[("09:00", "25:00")]),
                vec![("hours.mon[0].end", "invalid_time")],
            ),
            (
                "no padding",
                with_mon(&[("9:00", "18:00")]),
                vec![("hours.mon[0].start", "invalid_time")],
            ),
            (
                "start 24:00",
                with_mon(&[("24:00", "24:00")]),
                vec![("hours.mon[0].start", "invalid_time")],
            ),
            (
                "bad minutes",
                with_mon(&[("09:60", "18:00")]),
                vec![("hours.mon[0].start", "invalid_time")],
            ),
            (
                "empty",
                with_mon(&[("18:00", "09:00")]),
                vec![("hours.mon[0].end", "empty_interval")],
            ),
            (
                "zero length",
                with_mon(&[("09:00", "09:00")]),
                vec![("hours.mon[0].end", "empty_interval")],
            ),
            (
                "overlapping",
                with_mon(&[("09:00", "18:00"), ("10:00", "11:00"), ("11:00", "12:00")]),
                vec![
                    ("hours.mon[1]", "overlapping"),
                    ("hours.mon[2]", "overlapping"),
                ],
            ),
            (
                "duplicate interval",
                with_mon(&[("09:00", "12:00"), ("09:00", "12:00")]),
                vec![("hours.mon[1]", "duplicate")],
            ),
            (
                "duplicate holiday",
                CalendarSpec {
                    holidays: vec![date("2026-10-01"), date("2026-10-02"), date("2026-10-01")],
                    ..office()
                },
                vec![("holidays[2]", "duplicate")],
            ),
            (
                "holiday and workday",
                CalendarSpec {
                    holidays: vec![date("2026-10-01")],
                    workdays: vec![date("2026-09-27"), date("2026-10-01")],
                    ..office()
                },
                vec![("workdays[1]", "conflict")],
            ),
            (
                "never open",
                CalendarSpec {
                    hours: WeeklyHours::default(),
                    ..office()
                },
                vec![("hours", "never_open")],
            ),
            (
                "only make-up days",
                CalendarSpec {
                    hours: WeeklyHours::default(),
                    workdays: vec![date("2026-09-27")],
                    workday_hours: Some(vec![Interval::new("09:00", "18:00")]),
                    ..office()
                },
                vec![],
            ),
            (
                "make-up days without hours",
                CalendarSpec {
                    hours: WeeklyHours {
                        mon: vec![],
                        ..office().hours
                    },
                    workdays: vec![date("2026-09-27")],
                    ..office()
                },
                vec![("workday_hours", "no_hours")],
            ),
            (
                "bad workday hours",
                CalendarSpec {
                    workday_hours: Some(vec![Interval::new("09:00", "8:00")]),
                    ..office()
                },
                vec![("workday_hours[0].end", "invalid_time")],
            ),
            (
                "every problem at once",
                CalendarSpec {
                    timezone: "Asia/Beijing".into(),
                    hours: WeeklyHours {
                        sat: vec![Interval::new("10:00", "x")],
                        ..office().hours
                    },
                    holidays: vec![date("2026-10-01"), date("2026-10-01")],
                    ..office()
                },
                vec![
                    ("timezone", "unknown_timezone"),
                    ("hours.sat[0].end", "invalid_time"),
                    ("holidays[1]", "duplicate"),
                ],
            ),
        ];
        for (name, spec, expected) in cases {
            let expected: Vec<(String, &str)> = expected
                .into_iter()
                .map(|(f, c)| (f.to_owned(), c))
                .collect();
            assert_eq!(codes(&spec), expected, "{name}");
        }
        // Messages say what to do, not just what is wrong.
        let errors = BusinessCalendar::new(&with_mon(&[("09:00", "18:00"), ("17:00", "19:00")]))
            .expect_err("overlap");
        assert_eq!(
            errors[0].message,
            "17:00–19:00 overlaps 09:00–18:00 (hours.mon[0]); merge them into one interval"
        );
    }

    #[test]
    fn spec_json_round_trip_and_defaults() {
        let json = r#"{
            "hours": {"mon": [{"start": "09:00", "end": "18:00"}], "sat": []},
            "holidays": ["2026-10-01"],
            "workdays": ["2026-10-10"]
        }"#;
        let spec: CalendarSpec = serde_json::from_str(json).expect("parses");
        assert_eq!(spec.timezone, "Asia/Shanghai");
        assert!(spec.hours.tue.is_empty() && spec.workday_hours.is_none());
        assert_eq!(spec.holidays, vec![date("2026-10-01")]);
        let back: CalendarSpec =
            serde_json::from_value(serde_json::to_value(&spec).expect("serializes"))
                .expect("parses");
        assert_eq!(back, spec);
        // A make-up Saturday without workday_hours uses Monday's hours.
        let cal = calendar(&spec);
        let due = cal.add_business_seconds(at(&cal, "2026-10-09 10:00"), H);
        assert_eq!(due, at(&cal, "2026-10-10 10:00"));
        // Typos are rejected rather than silently closing a day.
        let typo = r#"{"hours": {"monday": [{"start": "09:00", "end": "18:00"}]}}"#;
        assert!(serde_json::from_str::<CalendarSpec>(typo).is_err());
        assert_eq!(CalendarSpec::default(), CalendarSpec::default_office());
    }
}
