package io.docshift.testenv.mongo;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import de.bwaldvogel.mongo.bson.Document;

/**
 * Change-stream pre-images ({@code fullDocumentBeforeChange}), as MongoDB 6.0+ records them for
 * collections with {@code changeStreamPreAndPostImages: {enabled: true}}.
 *
 * <p>MongoDB writes the document as it was before each update, replace and delete of such a
 * collection into {@code config.system.preimages} at the time of the write; a change stream that
 * asks for {@code fullDocumentBeforeChange} reads it from there. The launcher keeps the pre-image
 * in the oplog entry of the write instead (field {@value #OPLOG_FIELD}), so every change stream
 * that reads the entry sees the same pre-image and it lives exactly as long as the entry.
 *
 * <p>How it gets there: mongo-java-server writes the oplog entries of a delete or update statement
 * after it has changed the documents, under the collection's lock and on the same thread. While
 * such a statement runs, {@link TestBackend}'s collections {@link #capture} each document before
 * it is removed or changed into a per-thread map; the oplog collection then moves them into the
 * oplog entries it is given ({@link #attach}); {@link #end} drops whatever is left (a statement
 * whose changes produce no oplog entry). Nothing is kept between statements.
 */
final class PreImages {

    /** Oplog-entry field holding the pre-image (not a MongoDB field: the launcher's own). */
    static final String OPLOG_FIELD = "docshiftPreImage";

    /** Namespaces ({@code db.coll}) with changeStreamPreAndPostImages enabled. */
    private final Set<String> enabled = ConcurrentHashMap.newKeySet();

    /** The documents the running statement of this thread has changed so far, by _id. */
    private final ThreadLocal<Statement> statement = new ThreadLocal<>();

    private record Statement(String namespace, Map<Object, Document> before) {
    }

    void setEnabled(String namespace, boolean on) {
        if (on) {
            enabled.add(namespace);
        } else {
            enabled.remove(namespace);
        }
    }

    /** A delete or update statement on {@code namespace} starts on this thread. */
    void begin(String namespace) {
        // decided once per statement, at write time, as MongoDB does: enabling pre-images later
        // does not produce pre-images for earlier writes
        statement.set(enabled.contains(namespace) ? new Statement(namespace, new HashMap<>()) : null);
    }

    /** The statement started by {@link #begin} is over (its oplog entries are written). */
    void end() {
        statement.remove();
    }

    /** {@code document} is about to be removed, or is a copy of a document about to change. */
    void capture(String namespace, Document document) {
        Statement current = statement.get();
        if (current != null && current.namespace().equals(namespace)) {
            current.before().put(document.get("_id"), document.cloneDeeply());
        }
    }

    /** Adds the captured pre-image to a delete ("d") or update ("u") oplog entry of this thread. */
    Document attach(Document oplogEntry) {
        Statement current = statement.get();
        if (current == null || !current.namespace().equals(oplogEntry.get("ns"))) {
            return oplogEntry;
        }
        Object key = switch (String.valueOf(oplogEntry.get("op"))) {
            case "d" -> ((Document) oplogEntry.get("o")).get("_id");
            case "u" -> ((Document) oplogEntry.get("o2")).get("_id");
            default -> null;
        };
        Document before = key == null ? null : current.before().remove(key);
        if (before != null) {
            oplogEntry.put(OPLOG_FIELD, before);
        }
        return oplogEntry;
    }

    /** The pre-image stored in an oplog entry, or null. */
    static Document of(Document oplogEntry) {
        return oplogEntry.get(OPLOG_FIELD) instanceof Document before ? before : null;
    }
}
