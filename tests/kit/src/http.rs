//! A plain HTTP/1.1 client on `std::net::TcpStream`, for benches that must see every byte
//! of a response as it streams (no client library buffering or decoding in between).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::Result;

/// One keep-alive connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

impl Conn {
    /// Connects to `addr`; reads time out after `timeout`.
    pub fn open(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(timeout))?;
        Ok(Self {
            reader: BufReader::with_capacity(256 * 1024, s.try_clone()?),
            writer: s,
            addr,
        })
    }

    /// Sends `GET path` and feeds the decoded body (chunked or sized) to `sink`.
    /// Sends `GET path` (with `Authorization: Bearer token` when given) and feeds the
    /// decoded body (chunked or sized) to `sink`; an error for any status but 200, with
    /// the body it carried.
    pub fn get(
        &mut self,
        path: &str,
        token: Option<&str>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        let addr = self.addr;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Accept: */*\r\n\r\n"
        )?;
        self.writer.flush()?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let (mut chunked, mut length, mut close) = (false, None::<usize>, false);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err("connection closed in the headers".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-length" => length = Some(value.parse()?),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut error_body = Vec::new();
        let mut collect = |b: &[u8]| error_body.extend_from_slice(b);
        let out: &mut dyn FnMut(&[u8]) = if status == 200 { sink } else { &mut collect };
        if chunked {
            loop {
                line.clear();
                if self.reader.read_line(&mut line)? == 0 {
                    return Err("connection closed inside a chunked body".into());
                }
                let size_text = line.trim_end().split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| format!("bad chunk size line {line:?}"))?;
                if size == 0 {
                    loop {
                        line.clear();
                        if self.reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                self.body_bytes(size, out)?;
                line.clear();
                self.reader.read_line(&mut line)?;
            }
        } else if let Some(n) = length {
            self.body_bytes(n, out)?;
        } else {
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest)?;
            out(&rest);
            close = true;
        }
        if close {
            let _ = self.writer.shutdown(std::net::Shutdown::Both);
        }
        if status != 200 {
            return Err(format!(
                "GET {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&error_body)
            )
            .into());
        }
        Ok(())
    }

    fn body_bytes(&mut self, mut left: usize, out: &mut dyn FnMut(&[u8])) -> Result<()> {
        while left > 0 {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err("connection closed inside the body".into());
            }
            let n = buf.len().min(left);
            out(&buf[..n]);
            self.reader.consume(n);
            left -= n;
        }
        Ok(())
    }
}
