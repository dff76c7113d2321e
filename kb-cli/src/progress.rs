//! Progress bars on stderr (indicatif), hidden when stderr is not a terminal, with `-q`
//! or with `--json`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct Bar {
    bar: ProgressBar,
    visible: bool,
}

impl Bar {
    pub(crate) fn new(visible: bool) -> Self {
        let visible = visible && std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            None,
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        Self { bar, visible }
    }
}

impl kb_app::Progress for Bar {
    fn start(&self, phase: &str, total: Option<u64>) {
        if !self.visible {
            return;
        }
        self.bar.reset();
        match total {
            Some(t) => {
                self.bar.set_length(t);
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "{msg:>10} [{bar:30}] {pos}/{len} ({per_sec}, ETA {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
            }
            None => {
                self.bar.set_style(
                    ProgressStyle::with_template("{msg:>10} {spinner} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                self.bar
                    .enable_steady_tick(std::time::Duration::from_millis(120));
            }
        }
        self.bar.set_message(phase.to_owned());
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
    fn set(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
