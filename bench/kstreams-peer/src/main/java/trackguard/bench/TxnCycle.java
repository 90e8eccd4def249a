package trackguard.bench;

import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client's side of bench/txn_cycle.py: the same transaction cycle the Python one times
 * with confluent-kafka (begin; `records` records to each of `topics` spread over `partitions`
 * partitions; flush; the source offset sent under a real group's metadata; commit), so the two
 * clients meet the same broker in the same run. Prints one line per setting:
 * {@code partitions_written flush_p50_ms total_p50_ms total_p99_ms}.
 *
 * <p>Arguments: broker, source topic, comma-separated output topics, records per topic per cycle,
 * cycles, then the partition counts to spread over (e.g. {@code 1 8}).
 */
public final class TxnCycle {
    public static void main(String[] args) throws Exception {
        String broker = args[0];
        String source = args[1];
        List<String> topics = Arrays.asList(args[2].split(","));
        int records = Integer.parseInt(args[3]);
        int cycles = Integer.parseInt(args[4]);
        Properties pc = new Properties();
        pc.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker);
        pc.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "txn-cycle-" + UUID.randomUUID());
        pc.put(ProducerConfig.LINGER_MS_CONFIG, 2); // as trackguard's producer
        pc.put(ProducerConfig.ACKS_CONFIG, "all");
        pc.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        pc.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pc.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        Properties cc = new Properties();
        cc.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker);
        cc.put(ConsumerConfig.GROUP_ID_CONFIG, "txn-cycle-java");
        cc.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        cc.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cc.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        byte[] value = new byte[200];
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pc);
                KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cc)) {
            producer.initTransactions();
            consumer.subscribe(List.of(source));
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (consumer.assignment().isEmpty() && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(100));
            }
            ConsumerGroupMetadata group = consumer.groupMetadata();
            long offset = 0;
            for (int a = 5; a < args.length; a++) {
                int partitions = Integer.parseInt(args[a]);
                double[] flush = new double[cycles];
                double[] total = new double[cycles];
                for (int i = -cycles / 5; i < cycles; i++) { // the first fifth warms the JIT up, untimed
                    long t0 = System.nanoTime();
                    producer.beginTransaction();
                    for (int k = 0; k < records; k++) {
                        byte[] key = Integer.toString(k).getBytes();
                        for (String topic : topics) {
                            producer.send(new ProducerRecord<>(topic, k % partitions, key, value));
                        }
                    }
                    producer.flush();
                    long t1 = System.nanoTime();
                    offset++;
                    producer.sendOffsetsToTransaction(
                            Map.of(new TopicPartition(source, 0), new OffsetAndMetadata(offset)), group);
                    producer.commitTransaction();
                    long t2 = System.nanoTime();
                    if (i >= 0) {
                        flush[i] = (t1 - t0) / 1e6;
                        total[i] = (t2 - t0) / 1e6;
                    }
                }
                Arrays.sort(flush);
                Arrays.sort(total);
                int written = Math.min(partitions, records) * topics.size();
                System.out.printf("%d %.2f %.2f %.2f%n", written, flush[cycles / 2], total[cycles / 2],
                        total[Math.max(0, (int) Math.ceil(cycles * 0.99) - 1)]);
                System.out.flush();
            }
        }
    }
}
