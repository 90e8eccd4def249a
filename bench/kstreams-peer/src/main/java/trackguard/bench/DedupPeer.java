package trackguard.bench;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.NullNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of trackguard's decision, for bench/run.py (the twin of bench/quix_peer.py).
 *
 * <p>The first event seen for a normalized tracking number is "accepted", every later one
 * "duplicate"; JSON it cannot read, or without a tracking number, is "invalid" and never touches
 * the state. State: a RocksDB KeyValueStore with its changelog topic. One verdict per event to the
 * output topic, stamped with the wall-clock decision time. With --group-by it re-keys by the
 * normalized number through a named repartition topic first (as the Quix peer's group_by does).
 */
public final class DedupPeer {
    static final String STORE = "first-use";
    static final Bytes INVALID_KEY = Bytes.wrap("~invalid".getBytes(StandardCharsets.UTF_8)); // as the Quix peer
    static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS); // orjson rejects "{} x" too

    // --- normalization: streams/core/normalize.py normalize_tracking, line for line --------------

    /** The characters trackguard strips: " \t\r\n-_" and U+3000 (the ideographic space). */
    private static boolean stripped(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '-' || c == '_' || c == '\u3000';
    }

    private static String strip(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!stripped(c)) b.append(c);
        }
        return b.toString();
    }

    /**
     * NFKC, strip separators, upper-case; repeated until stable, as the Python does. Identical for
     * ASCII and full-width input. It could differ from Python 3.11 for: characters whose NFKC or
     * case mapping changed between Unicode 13 (Java 17) and 14 (Python 3.11); lone surrogates
     * (Jackson reads a "\ud800" escape, orjson rejects the whole document); and
     * String.toUpperCase vs str.upper special cases (both apply SpecialCasing, e.g. ß -> SS, and
     * Locale.ROOT keeps i -> I whatever the JVM's locale).
     */
    static String normalize(String raw) {
        boolean ascii = true;
        for (int i = 0; i < raw.length() && ascii; i++) ascii = raw.charAt(i) < 128;
        if (ascii) return strip(raw).toUpperCase(Locale.ROOT); // ASCII is NFKC-stable
        String number = strip(Normalizer.normalize(raw, Normalizer.Form.NFKC)).toUpperCase(Locale.ROOT);
        for (int i = 0; i < 3; i++) {
            String again = strip(Normalizer.normalize(number, Normalizer.Form.NFKC)).toUpperCase(Locale.ROOT);
            if (again.equals(number)) break;
            number = again;
        }
        return number;
    }

    // --- parsed event: what the decision needs, and its wire form for the repartition topic -------

    /** number == null: invalid. eventId: the event_id as JSON text ("null" when absent or unreadable). */
    record Parsed(String number, byte[] eventId) {
        static final byte[] NULL = "null".getBytes(StandardCharsets.UTF_8);

        static Parsed of(byte[] raw) {
            JsonNode obj;
            try {
                obj = raw == null ? null : JSON.readTree(raw);
            } catch (IOException e) {
                return new Parsed(null, NULL);
            }
            if (obj == null || !obj.isObject()) return new Parsed(null, NULL); // Python: AttributeError
            JsonNode id = obj.get("event_id"), tn = obj.get("tracking_no");
            String number = tn != null && tn.isTextual() ? normalize(tn.textValue()) : "";
            try {
                return new Parsed(number.isEmpty() ? null : number,
                        JSON.writeValueAsBytes(id == null ? NullNode.getInstance() : id));
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }

        byte[] verdict(String verdict) {
            try {
                String tn = number == null ? "null" : JSON.writeValueAsString(number); // escapes
                return ("{\"event_id\":" + new String(eventId, StandardCharsets.UTF_8) + ",\"tracking_no\":" + tn
                        + ",\"verdict\":\"" + verdict + "\"}").getBytes(StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** [int number length, -1 if none][number UTF-8][event id JSON]: small and fast to read back. */
    static final Serde<Parsed> PARSED = Serdes.serdeFrom(
            (Serializer<Parsed>) (topic, p) -> {
                byte[] n = p.number() == null ? new byte[0] : p.number().getBytes(StandardCharsets.UTF_8);
                return ByteBuffer.allocate(4 + n.length + p.eventId().length)
                        .putInt(p.number() == null ? -1 : n.length).put(n).put(p.eventId()).array();
            },
            (Deserializer<Parsed>) (topic, data) -> {
                ByteBuffer b = ByteBuffer.wrap(data);
                int len = b.getInt();
                String number = len < 0 ? null : new String(data, 4, len, StandardCharsets.UTF_8);
                byte[] id = new byte[data.length - 4 - Math.max(len, 0)];
                b.position(4 + Math.max(len, 0));
                b.get(id);
                return new Parsed(number, id);
            });

    // --- the decision ------------------------------------------------------------------------------

    static final class Decide implements FixedKeyProcessor<Bytes, Parsed, byte[]> {
        private FixedKeyProcessorContext<Bytes, byte[]> context;
        private KeyValueStore<Bytes, byte[]> store;

        @Override
        public void init(FixedKeyProcessorContext<Bytes, byte[]> context) {
            this.context = context;
            this.store = context.getStateStore(STORE);
        }

        @Override
        public void process(FixedKeyRecord<Bytes, Parsed> record) {
            Parsed p = record.value();
            String verdict;
            if (p.number() == null) {
                verdict = "invalid"; // no state access: these carry no (or a shared) key
            } else {
                // State is keyed by the record key, as Quix's is: the normalized number after
                // --group-by, and assumed to be it without (import keys by the number).
                Bytes key = record.key() != null ? record.key() : Bytes.wrap(p.number().getBytes(StandardCharsets.UTF_8));
                if (store.get(key) == null) {
                    store.put(key, p.eventId());
                    verdict = "accepted";
                } else {
                    verdict = "duplicate";
                }
            }
            // Stamp the decision time, not the input's (days old): the harness measures
            // first-to-last verdict by output record timestamps, as the Quix peer's set_timestamp.
            context.forward(record.withValue(p.verdict(verdict)).withTimestamp(System.currentTimeMillis()));
        }
    }

    static StreamsBuilder topology(String input, String output, boolean groupBy) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(STORE),
                Serdes.Bytes(), Serdes.ByteArray())); // RocksDB, changelog on (the default), no cache
        KStream<Bytes, Parsed> events = builder.stream(input, Consumed.with(Serdes.Bytes(), Serdes.ByteArray()))
                .mapValues(Parsed::of);
        if (groupBy) {
            events = events
                    .selectKey((k, p) -> p.number() == null ? INVALID_KEY
                            : Bytes.wrap(p.number().getBytes(StandardCharsets.UTF_8)))
                    .repartition(Repartitioned.with(Serdes.Bytes(), PARSED).withName("number"));
        }
        events.processValues(Decide::new, STORE).to(output, Produced.with(Serdes.Bytes(), Serdes.ByteArray()));
        return builder;
    }

    // --- main --------------------------------------------------------------------------------------

    public static void main(String[] argv) throws InterruptedException {
        // slf4j-simple reads these once, at the first logger: timestamps, and no config dumps per client.
        System.setProperty("org.slf4j.simpleLogger.showDateTime", "true");
        System.setProperty("org.slf4j.simpleLogger.dateTimeFormat", "HH:mm:ss.SSS");
        for (String quiet : new String[] {"consumer.ConsumerConfig", "producer.ProducerConfig", "admin.AdminClientConfig"}) {
            System.setProperty("org.slf4j.simpleLogger.log.org.apache.kafka.clients." + quiet, "warn");
        }
        Map<String, String> args = new HashMap<>(Map.of("--app-id", "kstreams-peer"));
        for (int i = 0; i < argv.length; i++) {
            if (argv[i].equals("--group-by")) args.put("--group-by", "true");
            else if (argv[i].startsWith("--") && i + 1 < argv.length) args.put(argv[i], argv[++i]);
            else usage("unexpected argument " + argv[i]);
        }
        for (String required : new String[] {"--broker", "--input", "--output", "--state-dir"}) {
            if (!args.containsKey(required)) usage("missing " + required);
        }

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("--app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("--broker"));
        p.put(StreamsConfig.STATE_DIR_CONFIG, args.get("--state-dir"));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE); // as the Quix peer
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1); // internal topics; the benchmark runs one node
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // A 45 s session makes a group join slow (NOTES); 6 s as the Quix peer, heartbeats within it.
        // (ConsumerConfig 4.2 has no constants for these; the classic group protocol uses them.)
        p.put(StreamsConfig.consumerPrefix(CommonClientConfigs.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(CommonClientConfigs.HEARTBEAT_INTERVAL_MS_CONFIG), 2000);

        KafkaStreams streams = new KafkaStreams(
                topology(args.get("--input"), args.get("--output"), args.containsKey("--group-by")).build(), p);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now); // "STATE RUNNING": the launcher's sign that it is up
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) done.countDown();
        });
        // A failure ends the process (the harness sees it exit) rather than leaving a zombie client.
        streams.setUncaughtExceptionHandler(e -> StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10)); // SIGTERM: commit offsets, flush and close the store
            done.countDown();
        }, "shutdown"));
        streams.start();
        done.await();
        boolean failed = streams.state() == KafkaStreams.State.ERROR;
        streams.close(Duration.ofSeconds(10));
        System.exit(failed ? 1 : 0);
    }

    private static void usage(String why) {
        System.err.println(why + "\nusage: DedupPeer --broker B --input T --output T --state-dir D [--group-by] [--app-id ID]");
        System.exit(2);
    }
}
