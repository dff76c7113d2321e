//! Timeline: dated entries by date.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    timeline, __timeline_cases:
    timeline_orders_by_date_then_key,
    timeline_range_and_importance,
    timeline_pages,
}

async fn dated(s: &S) -> Result<()> {
    kb(s, "t").await?;
    kb(s, "u").await?;
    put(
        s,
        note("t", "mar", "March", "")
            .date(date(2024, 3, 1))
            .importance(5),
    )
    .await?;
    put(
        s,
        note("t", "jan", "January", "")
            .date(date(2024, 1, 15))
            .importance(1),
    )
    .await?;
    put(
        s,
        note("t", "feb-b", "Feb B", "")
            .date(date(2024, 2, 10))
            .importance(9),
    )
    .await?;
    put(
        s,
        note("t", "feb-a", "Feb A", "")
            .date(date(2024, 2, 10))
            .importance(3),
    )
    .await?;
    put(s, note("t", "undated", "None", "").importance(10)).await?;
    put(s, note("u", "other", "Other", "").date(date(2024, 2, 1))).await?;
    Ok(())
}

/// The timeline lists dated entries only, ascending by date, ties by key.
async fn timeline_orders_by_date_then_key(s: S) -> Result<()> {
    dated(&s).await?;
    let t = s.timeline(&Filter::new().kb("t")).await?;
    assert_eq!(ids(&t), ["jan", "feb-a", "feb-b", "mar"]);
    Ok(())
}

/// The range is inclusive and the importance floor applies.
async fn timeline_range_and_importance(s: S) -> Result<()> {
    dated(&s).await?;
    let f = Filter::new().date_range(Some(date(2024, 2, 1)), Some(date(2024, 3, 1)));
    assert_eq!(
        ids(&s.timeline(&f).await?),
        ["other", "feb-a", "feb-b", "mar"]
    );
    assert_eq!(
        ids(&s.timeline(&f.min_importance(4)).await?),
        ["feb-b", "mar"]
    );
    Ok(())
}

/// The timeline pages like any list.
async fn timeline_pages(s: S) -> Result<()> {
    dated(&s).await?;
    let page2 = s
        .timeline(&Filter::new().kb("t").limit(2).offset(2))
        .await?;
    assert_eq!(ids(&page2), ["feb-b", "mar"]);
    Ok(())
}
