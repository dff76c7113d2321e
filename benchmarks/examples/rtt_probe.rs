use std::time::Instant;
#[tokio::main]
async fn main() {
    let url = std::env::var("KB_BENCH_PG_URL").unwrap();
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    for (name, n) in [("simple_query empty", 0), ("query SELECT 1", 1), ("query_typed SELECT 1", 2), ("prepared SELECT 1", 3)] {
        let st = c.prepare("SELECT 1::int4").await.unwrap();
        let mut v = vec![];
        for _ in 0..2000 {
            let s = Instant::now();
            match n {
                0 => { c.simple_query("").await.unwrap(); }
                1 => { c.query("SELECT 1::int4", &[]).await.unwrap(); }
                2 => { c.query_typed("SELECT 1::int4", &[]).await.unwrap(); }
                _ => { c.query(&st, &[]).await.unwrap(); }
            }
            v.push(s.elapsed());
        }
        v.sort();
        println!("{name}: {:?}", v[1000]);
    }
}
