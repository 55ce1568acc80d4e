//! Response bodies: whole, dripped slowly, or cut off with an error (which
//! makes hyper drop the connection mid-body).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The body of every answer the fake sends.
#[derive(Debug)]
pub(crate) struct FakeBody {
    data: Bytes,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Whole,
    Drip {
        chunk: usize,
        delay: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
    },
    /// Send the data, pause so hyper flushes it, then fail: the declared
    /// length is never reached.
    Cut {
        pause: Option<Pin<Box<Sleep>>>,
    },
}

impl FakeBody {
    pub fn whole(data: Bytes) -> FakeBody {
        FakeBody {
            data,
            mode: Mode::Whole,
        }
    }

    pub fn drip(data: Bytes, chunk: usize, delay: Duration) -> FakeBody {
        FakeBody {
            data,
            mode: Mode::Drip {
                chunk: chunk.max(1),
                delay,
                sleep: None,
            },
        }
    }

    pub fn cut(data: Bytes) -> FakeBody {
        FakeBody {
            data,
            mode: Mode::Cut { pause: None },
        }
    }
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match &mut this.mode {
            Mode::Whole => {
                if this.data.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.data)))))
                }
            }
            Mode::Drip {
                chunk,
                delay,
                sleep,
            } => {
                if this.data.is_empty() {
                    return Poll::Ready(None);
                }
                if let Some(timer) = sleep
                    && timer.as_mut().poll(cx).is_pending()
                {
                    return Poll::Pending;
                }
                *sleep = Some(Box::pin(tokio::time::sleep(*delay)));
                let part = this.data.split_to((*chunk).min(this.data.len()));
                Poll::Ready(Some(Ok(Frame::data(part))))
            }
            Mode::Cut { pause } => match pause {
                None => {
                    *pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(20))));
                    Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.data)))))
                }
                Some(timer) => {
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let error =
                        io::Error::new(io::ErrorKind::ConnectionReset, "fake: connection reset");
                    Poll::Ready(Some(Err(error)))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.mode {
            Mode::Whole | Mode::Drip { .. } => self.data.is_empty(),
            Mode::Cut { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.mode {
            Mode::Whole | Mode::Drip { .. } => SizeHint::with_exact(self.data.len() as u64),
            // Unknown, so hyper keeps the larger Content-Length we declared.
            Mode::Cut { .. } => SizeHint::default(),
        }
    }
}
