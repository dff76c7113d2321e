//! Who is calling, as the tools see it.

/// What one caller may touch. Over stdio it is fixed for the process (`kb mcp
/// [--read-only]`); over HTTP, `kb serve` derives it from the bearer token of each request
/// and puts it in the request's extensions, where [`crate::KbMcp`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpAccess {
    /// The KBs the caller may read; `None` means every KB.
    pub kbs: Option<Vec<String>>,
    /// May write in the KBs it may read.
    pub write: bool,
    /// May create KBs (`create_scratch_kb`).
    pub admin: bool,
}

impl McpAccess {
    /// Everything: a local agent over stdio.
    pub fn full() -> Self {
        Self {
            kbs: None,
            write: true,
            admin: true,
        }
    }
    /// Reads only, every KB (`kb mcp --read-only`).
    pub fn read_only() -> Self {
        Self {
            kbs: None,
            write: false,
            admin: false,
        }
    }
    /// Nothing at all: what an HTTP request without resolved access gets (fail closed).
    pub fn none() -> Self {
        Self {
            kbs: Some(Vec::new()),
            write: false,
            admin: false,
        }
    }
    pub fn can_read(&self, kb: &str) -> bool {
        self.kbs.as_ref().is_none_or(|k| k.iter().any(|k| k == kb))
    }
    pub fn can_write(&self, kb: &str) -> bool {
        self.write && self.can_read(kb)
    }
}
