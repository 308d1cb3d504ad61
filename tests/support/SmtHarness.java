// Runs transform chains through Kafka Connect's own Transformation classes, for
// tests/transforms_differential.rs. Compiled at test time against the reference
// worker's jars (dev/install connect).
//
// stdin: a JSON list of cases {"name", "chain": [{"class", "config": {..},
// "predicate": {"class", "config", "negate"} (optional)}],
// "records": [{"topic", "partition", "offset" (null: a SourceRecord),
// "timestamp", "key", "key_schemas", "value", "value_schemas",
// "headers": [[name, text or null]]}]}; keys and values are JSON documents as the
// JsonConverter reads them (envelopes when *_schemas is true).
//
// stdout: a JSON list, per case {"name", "config_error"} or {"name", "results":
// [per record {"dropped": true} | {"error", "message"} | {"topic", "partition",
// "timestamp", "key", "value", "headers"}]}, keys and values written back by the
// JsonConverter (with the envelope when they have a schema) and headers by the
// SimpleHeaderConverter, as a worker stores them.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.SimpleHeaderConverter;
import org.apache.kafka.connect.transforms.Transformation;
import org.apache.kafka.connect.transforms.predicates.Predicate;

public class SmtHarness {
    static final ObjectMapper JSON = new ObjectMapper();
    static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    static JsonConverter converter(boolean schemas, boolean isKey) {
        JsonConverter c = new JsonConverter();
        Map<String, Object> config = new HashMap<>();
        config.put("schemas.enable", Boolean.toString(schemas));
        config.put("converter.type", isKey ? "key" : "value");
        c.configure(config, isKey);
        return c;
    }

    static final JsonConverter KEY_WITH = converter(true, true);
    static final JsonConverter KEY_WITHOUT = converter(false, true);
    static final JsonConverter VALUE_WITH = converter(true, false);
    static final JsonConverter VALUE_WITHOUT = converter(false, false);
    static final SimpleHeaderConverter HEADERS = new SimpleHeaderConverter();

    static SchemaAndValue read(JsonNode doc, boolean schemas, boolean isKey, String topic) throws Exception {
        if (doc == null || doc.isNull()) {
            return SchemaAndValue.NULL;
        }
        byte[] bytes = JSON.writeValueAsBytes(doc);
        JsonConverter c = isKey ? (schemas ? KEY_WITH : KEY_WITHOUT) : (schemas ? VALUE_WITH : VALUE_WITHOUT);
        return c.toConnectData(topic, bytes);
    }

    static JsonNode write(String topic, org.apache.kafka.connect.data.Schema schema, Object value, boolean isKey)
            throws Exception {
        JsonConverter c = isKey ? (schema != null ? KEY_WITH : KEY_WITHOUT) : (schema != null ? VALUE_WITH : VALUE_WITHOUT);
        byte[] bytes = c.fromConnectData(topic, schema, value);
        return bytes == null ? NODES.nullNode() : JSON.readTree(bytes);
    }

    static ConnectRecord<?> record(JsonNode r) throws Exception {
        String topic = r.get("topic").asText();
        Integer partition = r.path("partition").isNull() || r.path("partition").isMissingNode() ? null : r.get("partition").asInt();
        Long timestamp = r.path("timestamp").isNull() || r.path("timestamp").isMissingNode() ? null : r.get("timestamp").asLong();
        SchemaAndValue key = read(r.get("key"), r.path("key_schemas").asBoolean(false), true, topic);
        SchemaAndValue value = read(r.get("value"), r.path("value_schemas").asBoolean(false), false, topic);
        ConnectHeaders headers = new ConnectHeaders();
        for (JsonNode h : r.path("headers")) {
            String name = h.get(0).asText();
            byte[] bytes = h.get(1).isNull() ? null : h.get(1).asText().getBytes(StandardCharsets.UTF_8);
            SchemaAndValue sv = HEADERS.toConnectHeader(topic, name, bytes);
            headers.add(name, sv);
        }
        if (r.path("offset").isNull() || r.path("offset").isMissingNode()) {
            return new SourceRecord(new HashMap<>(), new HashMap<>(), topic, partition,
                    key.schema(), key.value(), value.schema(), value.value(), timestamp, headers);
        }
        return new SinkRecord(topic, partition == null ? 0 : partition, key.schema(), key.value(),
                value.schema(), value.value(), r.get("offset").asLong(), timestamp, TimestampType.CREATE_TIME, headers);
    }

    static ObjectNode output(ConnectRecord<?> r) throws Exception {
        ObjectNode o = NODES.objectNode();
        o.put("topic", r.topic());
        if (r.timestamp() == null) o.putNull("timestamp"); else o.put("timestamp", r.timestamp());
        o.set("key", write(r.topic(), r.keySchema(), r.key(), true));
        o.set("value", write(r.topic(), r.valueSchema(), r.value(), false));
        ArrayNode hs = o.putArray("headers");
        for (Header h : r.headers()) {
            byte[] bytes = HEADERS.fromConnectHeader(r.topic(), h.key(), h.schema(), h.value());
            ArrayNode pair = hs.addArray();
            pair.add(h.key());
            if (bytes == null) pair.addNull(); else pair.add(new String(bytes, StandardCharsets.UTF_8));
        }
        return o;
    }

    static Map<String, Object> config(JsonNode node) {
        Map<String, Object> config = new HashMap<>();
        Iterator<Map.Entry<String, JsonNode>> it = node.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            config.put(e.getKey(), e.getValue().asText());
        }
        return config;
    }

    static String message(Throwable e) {
        return e.getMessage() == null ? e.toString() : e.getMessage();
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    public static void main(String[] args) throws Exception {
        HEADERS.configure(new HashMap<>());
        JsonNode cases = JSON.readTree(System.in);
        ArrayNode out = NODES.arrayNode();
        for (JsonNode c : cases) {
            ObjectNode result = out.addObject();
            result.put("name", c.get("name").asText());
            List<Transformation> chain = new ArrayList<>();
            List<Predicate> predicates = new ArrayList<>();
            List<Boolean> negations = new ArrayList<>();
            try {
                for (JsonNode step : c.get("chain")) {
                    Transformation t = (Transformation) Class.forName(step.get("class").asText())
                            .getDeclaredConstructor().newInstance();
                    t.configure(config(step.get("config")));
                    chain.add(t);
                    JsonNode p = step.path("predicate");
                    if (p.isObject()) {
                        Predicate predicate = (Predicate) Class.forName(p.get("class").asText())
                                .getDeclaredConstructor().newInstance();
                        predicate.configure(config(p.get("config")));
                        predicates.add(predicate);
                        negations.add(p.path("negate").asBoolean(false));
                    } else {
                        predicates.add(null);
                        negations.add(false);
                    }
                }
            } catch (Throwable e) {
                result.put("config_error", message(e));
                continue;
            }
            ArrayNode results = result.putArray("results");
            for (JsonNode r : c.get("records")) {
                ObjectNode res = results.addObject();
                try {
                    ConnectRecord rec = record(r);
                    for (int i = 0; i < chain.size(); i++) {
                        Predicate p = predicates.get(i);
                        // As the worker's TransformationStage: a predicate gates its transform.
                        if (p == null || p.test(rec) != negations.get(i)) {
                            rec = chain.get(i).apply(rec);
                        }
                        if (rec == null) break;
                    }
                    if (rec == null) {
                        res.put("dropped", true);
                    } else {
                        res.setAll(output(rec));
                    }
                } catch (Throwable e) {
                    res.put("error", e.getClass().getName());
                    res.put("message", message(e));
                }
            }
        }
        System.out.println(JSON.writeValueAsString(out));
    }
}
