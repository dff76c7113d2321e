//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kb",
    version,
    about = "Storage and search for knowledge bases and agent memory"
)]
pub(crate) struct Cli {
    /// Database: sqlite:PATH, a file path, or postgres://… (default: KB_DATABASE_URL,
    /// DATABASE_URL, kb.toml, then .kb/index.db).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) db: Option<String>,
    /// Configuration file, or a folder holding kb.toml (default: ./kb.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,
    /// One JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Print only errors.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// More detail: causes of errors, log lines (-vv for debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create the store and a commented kb.toml.
    Init {
        /// Folder to initialise (default: the current one).
        dir: Option<PathBuf>,
        /// Also create this knowledge base (default: notes).
        #[arg(long)]
        kb: Option<String>,
    },
    /// Sync a folder of markdown notes into a knowledge base.
    Sync(SyncArgs),
    /// Index commands (`kb index sync` is `kb sync`).
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Write every entry of a KB as a markdown file with frontmatter.
    Export {
        dir: PathBuf,
        #[arg(long)]
        kb: Option<String>,
    },
    /// Import a JSONL file (BEIR-style {"_id","title","text"} lines).
    Import {
        file: PathBuf,
        #[arg(long)]
        kb: Option<String>,
        /// Leave the embedding queue for `kb embed` or a server's worker.
        #[arg(long)]
        no_embed: bool,
    },
    /// Search entries.
    Search(SearchArgs),
    /// Show one entry.
    Get {
        id: String,
        #[arg(long)]
        kb: Option<String>,
    },
    /// List entries.
    List(ListArgs),
    /// Write one entry from a markdown file (with frontmatter) or stdin (`-`).
    Put {
        /// A markdown file, or `-` for stdin (default).
        file: Option<PathBuf>,
        #[arg(long)]
        kb: Option<String>,
        /// Id when the frontmatter has none (default: the file name).
        #[arg(long)]
        id: Option<String>,
        /// The entry fades after this long (e.g. 30m, 12h, 7d): absent from every read,
        /// then deleted by `kb gc`.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// Delete one entry.
    Rm {
        id: String,
        #[arg(long)]
        kb: Option<String>,
    },
    /// Entries linking to an entry.
    Backlinks {
        id: String,
        #[arg(long)]
        kb: Option<String>,
    },
    /// Dated entries, oldest first.
    Timeline {
        #[arg(long)]
        kb: Option<String>,
        /// From this date (YYYY-MM-DD).
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Up to this date (YYYY-MM-DD).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Embed every queued entry.
    Embed {
        /// Concurrent workers (default: one per core, at most 4).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Embed every entry again (all of them, or one KB's), e.g. after changing the
    /// passage settings or when vectors look stale.
    Reembed {
        #[arg(long)]
        kb: Option<String>,
        /// The store holds another model's vectors: forget them all and embed every entry
        /// with the configured model (every KB; stop servers' workers first).
        #[arg(long)]
        reset: bool,
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Atomically move a task from one status to another and assign it.
    Claim {
        id: String,
        #[arg(long)]
        kb: Option<String>,
        /// Expected current status (`none` for no status).
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// The assignee.
        #[arg(long = "as", value_name = "NAME")]
        assignee: String,
    },
    /// Knowledge bases.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Remove expired ephemeral knowledge bases.
    Gc,
    /// Copy every KB, entry, setting, star, collection and vector to another store.
    Migrate {
        #[arg(long, value_name = "URL")]
        from: String,
        #[arg(long, value_name = "URL")]
        to: String,
        /// Compare both stores afterwards (counts, checksums, vectors bit for bit).
        #[arg(long)]
        verify: bool,
    },
    /// Backend, versions, embedding space, counts, queue and pool.
    Status,
    /// Serve the HTTP JSON API (with the background embedding workers) until Ctrl-C or SIGTERM.
    Serve {
        /// Address to listen on. A non-loopback address needs an access token (`kb token
        /// create`) or --no-auth.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Serve without authentication, even on a non-loopback address.
        #[arg(long)]
        no_auth: bool,
        /// Requests one token may have running at once; more are answered 429 (retry).
        #[arg(long, default_value_t = kb_server::auth::DEFAULT_MAX_IN_FLIGHT, value_name = "N")]
        max_in_flight: usize,
        /// Seconds a request may run before it is answered 504.
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        request_timeout: u64,
    },
    /// Serve the knowledge base to an agent over MCP on stdin/stdout (for desktop agents
    /// that spawn it), with the background embedding workers, until stdin closes.
    Mcp {
        /// Offer only the tools that read: write tools are not even listed.
        #[arg(long)]
        read_only: bool,
    },
    /// Access tokens for `kb serve`.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        /// A knowledge base the token may use (repeat for several).
        #[arg(long)]
        kb: Vec<String>,
        /// Read and write (default: read only).
        #[arg(long)]
        write: bool,
        /// Everything, on every knowledge base.
        #[arg(long, conflicts_with_all = ["kb", "write"])]
        admin: bool,
        /// A name to recognise it by in `kb token list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (ids, scopes, knowledge bases; never the tokens).
    List,
    /// Revoke a token by the id `kb token list` shows.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub(crate) enum IndexCommand {
    Sync(SyncArgs),
}

#[derive(Args)]
pub(crate) struct SyncArgs {
    /// The folder of markdown notes.
    pub(crate) dir: PathBuf,
    /// Knowledge base (default: kb.toml's default_kb, the only KB, or the folder's name).
    #[arg(long)]
    pub(crate) kb: Option<String>,
    /// Keep syncing as files change, until Ctrl-C.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Leave the embedding queue for `kb embed` or a server's worker.
    #[arg(long)]
    pub(crate) no_embed: bool,
    /// Sync even though the KB was synced from another folder.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    pub(crate) query: String,
    #[arg(long, default_value = "hybrid", value_parser = ["keyword", "semantic", "hybrid"])]
    pub(crate) mode: String,
    #[arg(long)]
    pub(crate) kb: Vec<String>,
    #[arg(long = "type")]
    pub(crate) entry_type: Vec<String>,
    /// A tag or a tag prefix (`topic` matches `topic/rust`).
    #[arg(long)]
    pub(crate) tag: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub(crate) limit: usize,
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
    /// Show each leg's rank and score.
    #[arg(long)]
    pub(crate) explain: bool,
    /// Match any of the words (free text) instead of the query language.
    #[arg(long)]
    pub(crate) any: bool,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    #[arg(long)]
    pub(crate) kb: Option<String>,
    #[arg(long = "type")]
    pub(crate) entry_type: Vec<String>,
    /// A tag or a tag prefix.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    #[arg(long)]
    pub(crate) status: Vec<String>,
    /// Only entries whose file is under this folder.
    #[arg(long)]
    pub(crate) path: Option<String>,
    #[arg(long, value_parser = ["updated", "created", "title", "date", "importance"], default_value = "updated")]
    pub(crate) sort: String,
    #[arg(long)]
    pub(crate) asc: bool,
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
    /// Archived entries too.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Subcommand)]
pub(crate) enum KbCommand {
    /// Create a knowledge base.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Removed by `kb gc` once its TTL has passed.
        #[arg(long)]
        ephemeral: bool,
        /// Time to live of an ephemeral KB (e.g. 1h, 30m, 7d).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// List knowledge bases.
    List,
    /// Delete a knowledge base with everything in it.
    Rm { name: String },
}
