// Baseline for `loadtest chat-fanout`: a plain Node `ws` broadcast server that relays every
// text frame it receives to every connected client (the sender included), with no auth, no
// storage and no per-room state. It is the floor StudyOn's chat fan-out is compared against.
//
// usage: node broadcast.mjs PORT      (binds 127.0.0.1 only; prints "listening PORT" when ready)
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node broadcast.mjs PORT');
  process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
    }
  });
});

wss.on('listening', () => console.log(`listening ${port}`));

const stop = () => {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
