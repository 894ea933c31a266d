/**
 * An upload a test controls byte by byte, over a bare TCP socket (Node's HTTP client closes the
 * connection when an answer arrives before its request is out, which would cut the upload
 * short): a POST of `size` bytes of one character (`[` by default: the cheapest way to make a JSON
 * parser work hard), in 64 KiB chunks with backpressure, framed by Content-Length or chunked.
 * With `withholdLastByte` the body's last byte (chunked: the terminating chunk) never leaves, so a
 * server that waits for the whole body can never answer; one that refuses early does.
 */
import net from 'node:net';

export interface UploadAnswer {
  status: number;
  type: string;
  body: unknown;
  headers: Record<string, string>;
  /** Body bytes this client had handed to the socket when the answer's first bytes arrived. */
  bytesSentBeforeAnswer: number;
}

export interface Upload {
  /** The server's answer (read whole once its Content-Length of bytes arrived). */
  answer: Promise<UploadAnswer>;
  /** Resolves with the body bytes handed to the socket, once all to be sent are (or it closed). */
  sent: Promise<number>;
  /** Closes the connection (an upload whose last byte is withheld never ends by itself). */
  abort(): void;
}

const CHUNK = 64 * 1024;

export function slowUpload(url: string, opts: { size: number; headers?: Record<string, string>; chunked?: boolean; withholdLastByte?: boolean; fill?: string }): Upload {
  const u = new URL(url);
  const headers: Record<string, string> = { Host: u.host, 'Content-Type': 'application/json', ...opts.headers };
  if (opts.chunked) headers['Transfer-Encoding'] = 'chunked';
  else headers['Content-Length'] = String(opts.size);
  const head = `POST ${u.pathname}${u.search} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  const socket = net.connect(Number(u.port), u.hostname);
  let written = 0;
  let closed = false;
  socket.on('close', () => (closed = true));

  const answer = new Promise<UploadAnswer>((resolve, reject) => {
    let received = Buffer.alloc(0);
    let bytesSentBeforeAnswer = -1;
    socket.on('data', (c: Buffer) => {
      if (bytesSentBeforeAnswer < 0) bytesSentBeforeAnswer = written;
      received = Buffer.concat([received, c]);
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine = '', ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const h = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(h['content-length'] ?? 0);
      if (received.length < end + 4 + length) return;
      const text = received.subarray(end + 4, end + 4 + length).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // left as text: the assertion on the type shows it
      }
      resolve({ status: Number(statusLine.split(' ')[1]), type: h['content-type'] ?? '', body, headers: h, bytesSentBeforeAnswer });
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed before an answer (${written} bytes sent)`)));
  });
  answer.catch(() => undefined);

  const toSend = opts.withholdLastByte && !opts.chunked ? opts.size - 1 : opts.size;
  const chunk = Buffer.alloc(CHUNK, opts.fill ?? '[');
  const sent = (async () => {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(head);
    while (written < toSend && !closed) {
      const n = Math.min(CHUNK, toSend - written);
      const data = n === CHUNK ? chunk : chunk.subarray(0, n);
      const ok = socket.write(opts.chunked ? Buffer.concat([Buffer.from(`${n.toString(16)}\r\n`), data, Buffer.from('\r\n')]) : data);
      written += n;
      if (!ok) await drainedOrClosed(socket);
    }
    if (opts.chunked && !opts.withholdLastByte && !closed) socket.write('0\r\n\r\n');
    return written;
  })();
  sent.catch(() => undefined);
  return { answer, sent, abort: () => socket.destroy() };
}

function drainedOrClosed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
