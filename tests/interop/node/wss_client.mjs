// Interop client: Node's `ws` over wss, against the broker serving TLS and
// requiring tokens (the interop suite's second broker, its test certificate
// trusted through `ws`'s `ca` option).
//
// Tokens are HS256 JWTs signed with node:crypto's HMAC (jwt.mjs: not the
// broker's code, nor PyJWT): a user entitled to AAPL and MSFT receives
// ticks of those only, with the token in an `Authorization: Bearer` header
// and in `?token=`; without a token the upgrade is refused with HTTP 401.
// Every wait is bounded; the run is capped at TOTAL_MS.
//
// Usage: node wss_client.mjs https://localhost:PORT CA_FILE SECRET_FILE
// Prints `PASS node-ws-wss ...` or `FAIL node-ws-wss: reason`; exit code 0 or 1.

import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { decode } from "@msgpack/msgpack";
import { readSecret, userToken } from "./jwt.mjs";

const NAME = "node-ws-wss";
const TOTAL_MS = 20_000;
const STEP_MS = 4_000;
const LISTEN_MS = 2_000;
const SYMS = ["AAPL", "MSFT"];

class Failure extends Error {}

function check(ok, what) {
  if (!ok) throw new Failure(what);
}

/** Opens `url`; resolves with the decoded frames of LISTEN_MS, or rejects with the refusal's HTTP status. */
function listen(url, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ...options, handshakeTimeout: STEP_MS });
    const frames = [];
    ws.on("unexpected-response", (req, res) => {
      reject(Object.assign(new Failure(`HTTP ${res.statusCode}`), { status: res.statusCode }));
      req.destroy();
    });
    ws.on("error", (e) => reject(e));
    ws.on("open", () => setTimeout(() => (ws.close(), resolve(frames)), LISTEN_MS));
    ws.on("message", (data) => frames.push(decode(data)));
  });
}

async function run(base, caFile, secretFile) {
  const ca = readFileSync(caFile);
  const secret = readSecret(secretFile);
  const wsUrl = `wss://${new URL(base).host}/ws?topics=*`;
  const token = userToken(secret, "dora", SYMS, 600);
  const ways = {
    header: [wsUrl, { ca, headers: { authorization: `Bearer ${token}` } }],
    query: [`${wsUrl}&token=${encodeURIComponent(token)}`, { ca }],
  };
  for (const [way, [url, options]] of Object.entries(ways)) {
    const frames = await listen(url, options);
    check(frames[0]?.type === "subscribed", `${way}: first frame ${JSON.stringify(frames[0])}`);
    const ticks = frames.filter((f) => f.type === "tick");
    check(ticks.length > 0, `${way}: no tick in ${LISTEN_MS} ms`);
    const outside = [...new Set(ticks.map((t) => t.sym).filter((s) => !SYMS.includes(s)))];
    check(outside.length === 0, `${way}: ticks outside ${SYMS}: ${outside}`);
    console.log(`PASS ${NAME} token in the ${way}: ${ticks.length} ticks, none outside ${SYMS}`);
  }
  const refused = await listen(wsUrl, { ca }).then(
    () => null,
    (e) => e.status ?? e.message,
  );
  check(refused === 401, `no token: ${refused ?? "accepted"}`);
  console.log(`PASS ${NAME} no token: 401`);
}

const [base, caFile, secretFile] = process.argv.slice(2);
if (!secretFile) {
  console.log(`FAIL ${NAME}: usage: node wss_client.mjs https://localhost:PORT CA_FILE SECRET_FILE`);
  process.exit(1);
}
const deadline = setTimeout(() => {
  console.log(`FAIL ${NAME}: did not finish within ${TOTAL_MS / 1000} s`);
  process.exit(1);
}, TOTAL_MS);
run(base, caFile, secretFile)
  .then(() => clearTimeout(deadline))
  .catch((e) => {
    console.log(`FAIL ${NAME}: ${e.message}`);
    process.exit(1);
  });
