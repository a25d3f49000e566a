// validate.mjs reads an MCAP file with the reference TypeScript implementation
// (@mcap/core) twice, once with McapStreamReader (every record, in file order)
// and once with McapIndexedReader (through the summary and indexes), checks
// that both agree with each other and with the file's own statistics and
// CRCs, and prints a JSON description on stdout. It exits 1, with the reason
// on stderr, if the file is invalid.
//
// Channels of message encoding "json" with a "jsonschema" schema are held to
// what Foxglove reads: the schema must be one Foxglove's JSON Schema reader
// accepts (see foxgloveSchema), and every message a JSON object valid
// against it, by ajv under both JSON Schema draft-07 and draft 2020-12 (mcl
// writes keywords that mean the same in both), with its base64 fields
// decodable as Foxglove decodes them.
//
// Usage: node validate.mjs FILE.mcap
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";

import { crc32 } from "@foxglove/crc";
import { McapIndexedReader, McapStreamReader } from "@mcap/core";
import { loadDecompressHandlers } from "@mcap/support";
import Ajv from "ajv";
import Ajv2020 from "ajv/dist/2020.js";

function fail(message) {
  process.stderr.write(`invalid MCAP: ${message}\n`);
  process.exit(1);
}

function check(cond, message) {
  if (!cond) {
    fail(message);
  }
}

// foxgloveSchema checks a JSON Schema as Foxglove's reader (parseJsonSchema in
// foxglove/studio's packages/mcap-support, kept by Lichtblick) would: the
// root and every nested object has "type": "object" and "properties"; every
// property has one "type" among boolean, integer, number, string
// (contentEncoding absent or base64), object and array, whose "items" have
// one of those types but array, without contentEncoding. Anything else
// makes Foxglove refuse the channel.
function foxgloveSchema(schema, path) {
  check(schema !== null && typeof schema === "object", `${path}: not an object`);
  check(schema.type === "object", `${path}: type ${JSON.stringify(schema.type)}, Foxglove wants "object"`);
  check(schema.properties !== null && typeof schema.properties === "object", `${path}: no properties`);
  for (const [name, field] of Object.entries(schema.properties)) {
    foxgloveField(field, `${path}.${name}`, false);
  }
}

function foxgloveField(field, path, item) {
  switch (field?.type) {
    case "boolean":
    case "integer":
    case "number":
      return;
    case "string":
      check(field.contentEncoding === undefined || (!item && field.contentEncoding === "base64"),
        `${path}: contentEncoding ${JSON.stringify(field.contentEncoding)} Foxglove does not read`);
      return;
    case "object":
      foxgloveSchema(field, path);
      return;
    case "array":
      check(!item, `${path}: an array of arrays, which Foxglove does not read`);
      foxgloveField(field.items, `${path}[]`, true);
      return;
  }
  fail(`${path}: type ${JSON.stringify(field?.type)}, which Foxglove does not read`);
}

// foxgloveBytes checks that the fields a schema marks as base64 hold
// canonical base64, which Foxglove decodes into bytes.
function foxgloveBytes(schema, value, path) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return;
  }
  for (const [name, field] of Object.entries(schema.properties ?? {})) {
    const v = value[name];
    if (field.contentEncoding === "base64" && typeof v === "string") {
      check(Buffer.from(v, "base64").toString("base64") === v, `${path}.${name}: ${JSON.stringify(v)} is not base64`);
    } else if (field.type === "object") {
      foxgloveBytes(field, v, `${path}.${name}`);
    } else if (field.type === "array" && field.items.type === "object" && Array.isArray(v)) {
      v.forEach((e, i) => foxgloveBytes(field.items, e, `${path}.${name}[${i}]`));
    }
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
  // JSON channels: the validators of each schema, by schema ID, under both drafts.
  const drafts = [new Ajv({ strict: true }), new Ajv2020({ strict: true })];
  const jsonValidators = new Map();
  const jsonChannels = new Set();
  let jsonMessages = 0;
  const textDecoder = new TextDecoder("utf-8", { fatal: true });
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
        const schema = schemas.get(channel.schemaId);
        if (schema?.encoding === "jsonschema") {
          const where = `message ${record.sequence} on channel ${channel.id} (${channel.topic})`;
          check(channel.messageEncoding === "json", `${where}: schema encoding jsonschema, message encoding ${channel.messageEncoding}`);
          let validators = jsonValidators.get(schema.id);
          if (validators === undefined) {
            const parsed = JSON.parse(textDecoder.decode(schema.data));
            foxgloveSchema(parsed, `schema ${schema.id} (${schema.name})`);
            validators = { parsed, fns: drafts.map((ajv) => ajv.compile(parsed)) };
            jsonValidators.set(schema.id, validators);
          }
          let value;
          try {
            value = JSON.parse(textDecoder.decode(record.data));
          } catch (err) {
            fail(`${where}: not JSON: ${err.message}`);
          }
          check(value !== null && typeof value === "object" && !Array.isArray(value), `${where}: not a JSON object`);
          for (const validate of validators.fns) {
            check(validate(value), `${where}: invalid against schema ${schema.id}: ${JSON.stringify(validate.errors)}`);
          }
          foxgloveBytes(validators.parsed, value, where);
          jsonChannels.add(channel.id);
          jsonMessages++;
        }
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
    jsonChannels: jsonChannels.size,
    jsonMessages,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => fail(err?.stack ?? String(err)));
