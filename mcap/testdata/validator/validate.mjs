// validate.mjs reads an MCAP file with the reference TypeScript implementation
// (@mcap/core) twice, once with McapStreamReader (every record, in file order)
// and once with McapIndexedReader (through the summary and indexes), checks
// that both agree with each other and with the file's own statistics and
// CRCs, and prints a JSON description on stdout. It exits 1, with the reason
// on stderr, if the file is invalid.
//
// Usage: node validate.mjs FILE.mcap
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";

import { crc32 } from "@foxglove/crc";
import { McapIndexedReader, McapStreamReader } from "@mcap/core";
import { loadDecompressHandlers } from "@mcap/support";

function fail(message) {
  process.stderr.write(`invalid MCAP: ${message}\n`);
  process.exit(1);
}

function check(cond, message) {
  if (!cond) {
    fail(message);
  }
}

// messageKey identifies a message independently of read order.
function messageKey(topic, m) {
  const digest = createHash("sha256").update(m.data).digest("hex");
  return `${topic}|${m.logTime}|${m.publishTime}|${m.sequence}|${digest}`;
}

async function main() {
  const path = process.argv[2];
  if (!path) {
    fail("usage: node validate.mjs FILE.mcap");
  }
  const bytes = new Uint8Array(await readFile(path));
  const decompressHandlers = await loadDecompressHandlers();

  // Stream reader: every record in file order, chunk CRCs validated.
  const stream = new McapStreamReader({ decompressHandlers, validateCrcs: true });
  stream.append(bytes);
  const channels = new Map();
  const schemas = new Map();
  const streamKeys = [];
  const streamCounts = {};
  const countsByChannel = new Map(); // a topic may have several channels (mcl: one per sender)
  const compressions = new Set();
  let header;
  let dataEnd;
  let footer;
  let chunks = 0;
  let metadata = 0;
  // Hash of the messages in file order, in the form the Go test recomputes.
  const ordered = createHash("sha256");
  for (let record; (record = stream.nextRecord()); ) {
    switch (record.type) {
      case "Header":
        header = record;
        break;
      case "Schema":
        schemas.set(record.id, record);
        break;
      case "Channel":
        channels.set(record.id, record);
        break;
      case "Message": {
        const channel = channels.get(record.channelId);
        streamKeys.push(messageKey(channel.topic, record));
        streamCounts[channel.topic] = (streamCounts[channel.topic] ?? 0) + 1;
        countsByChannel.set(record.channelId, (countsByChannel.get(record.channelId) ?? 0) + 1);
        ordered.update(`${channel.topic}\0${record.logTime}\0${record.publishTime}\0${record.sequence}\0`);
        ordered.update(record.data);
        break;
      }
      case "Metadata":
        metadata++;
        break;
      case "DataEnd":
        dataEnd = record;
        break;
      case "Footer":
        footer = record;
        break;
      default:
        break;
    }
  }
  check(stream.done(), `stream reader did not reach the footer (${stream.bytesRemaining()} bytes left)`);
  check(header !== undefined, "no Header");
  check(dataEnd !== undefined, "no Data End record");
  check(footer !== undefined, "no Footer");

  // Chunk records, for compression and count (a second pass that only lists them).
  const chunkStream = new McapStreamReader({ decompressHandlers, includeChunks: true });
  chunkStream.append(bytes);
  for (let record; (record = chunkStream.nextRecord()); ) {
    if (record.type === "Chunk") {
      chunks++;
      compressions.add(record.compression);
    }
  }

  // Indexed reader: summary CRC, Data End placement and the indexes.
  const readable = {
    size: async () => BigInt(bytes.byteLength),
    read: async (offset, length) => {
      const end = offset + length;
      check(offset >= 0n && end <= BigInt(bytes.byteLength), `read out of range ${offset}+${length}`);
      return bytes.subarray(Number(offset), Number(end));
    },
  };
  const indexed = await McapIndexedReader.Initialize({ readable, decompressHandlers });
  if (indexed.dataSectionCrc !== undefined) {
    const computed = crc32(bytes.subarray(0, Number(indexed.dataEndOffset)));
    check(computed === indexed.dataSectionCrc,
      `data section CRC ${computed} != Data End's ${indexed.dataSectionCrc}`);
  }
  const stats = indexed.statistics;
  check(stats !== undefined, "no Statistics record in the summary");
  check(Number(stats.messageCount) === streamKeys.length,
    `Statistics.messageCount ${stats.messageCount} != ${streamKeys.length} messages in the file`);
  check(stats.chunkCount === chunks, `Statistics.chunkCount ${stats.chunkCount} != ${chunks} chunks`);
  check(stats.metadataCount === metadata, `Statistics.metadataCount ${stats.metadataCount} != ${metadata}`);
  check(stats.channelCount === channels.size, `Statistics.channelCount ${stats.channelCount} != ${channels.size}`);
  check(stats.schemaCount === schemas.size, `Statistics.schemaCount ${stats.schemaCount} != ${schemas.size}`);
  check(indexed.chunkIndexes.length === chunks, `${indexed.chunkIndexes.length} Chunk Index records for ${chunks} chunks`);
  check(indexed.channelsById.size === channels.size, "summary channels differ from data section channels");
  check(indexed.schemasById.size === schemas.size, "summary schemas differ from data section schemas");
  for (const [id, count] of stats.channelMessageCounts) {
    const channel = indexed.channelsById.get(id);
    check(channel !== undefined, `Statistics count for unknown channel ${id}`);
    check(Number(count) === (countsByChannel.get(id) ?? 0),
      `Statistics count ${count} for channel ${id} (${channel.topic}) != ${countsByChannel.get(id) ?? 0}`);
  }
  let metadataIndexed = 0;
  for await (const _ of indexed.readMetadata()) {
    metadataIndexed++;
  }
  check(metadataIndexed === metadata, `${metadataIndexed} metadata via index, ${metadata} in the file`);

  // Messages through the indexes (only chunked files are indexed), in log time order.
  let indexedMessages = null;
  if (chunks > 0) {
    const indexedKeys = [];
    let last = -1n;
    for await (const m of indexed.readMessages({ validateCrcs: true })) {
      check(m.logTime >= last, "indexed reader returned messages out of log time order");
      last = m.logTime;
      indexedKeys.push(messageKey(indexed.channelsById.get(m.channelId).topic, m));
    }
    indexedMessages = indexedKeys.length;
    const a = [...streamKeys].sort();
    const b = indexedKeys.sort();
    check(a.length === b.length && a.every((k, i) => k === b[i]),
      `indexed reader found ${b.length} messages, stream reader ${a.length}, or they differ`);
  }

  const out = {
    library: header.library,
    profile: header.profile,
    messages: streamKeys.length,
    indexedMessages,
    channels: streamCounts,
    channelCount: channels.size,
    schemas: schemas.size,
    metadata,
    chunks,
    compression: [...compressions].sort(),
    messageStartTime: stats.messageStartTime.toString(),
    messageEndTime: stats.messageEndTime.toString(),
    orderedSha256: ordered.digest("hex"),
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => fail(err?.stack ?? String(err)));
