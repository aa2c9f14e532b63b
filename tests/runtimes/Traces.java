// Prints real Java stack traces between ordinary log lines: nested causes, suppressed
// exceptions and "... N more", then dies of an uncaught exception.
public class Traces {
    static void parse(String text) {
        Integer.parseInt(text);
    }

    static void load(String text) {
        try {
            parse(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad value " + text, e);
        }
    }

    static void service() {
        try {
            load("x");
        } catch (IllegalArgumentException e) {
            IllegalStateException outer = new IllegalStateException("service failed", e);
            outer.addSuppressed(new java.io.UncheckedIOException("close failed",
                    new java.io.IOException("stream closed")));
            throw outer;
        }
    }

    public static void main(String[] args) {
        System.out.println("2026-12-02 09:00:00 INFO before the trace");
        try {
            service();
        } catch (RuntimeException e) {
            System.out.println("2026-12-02 09:00:01 ERROR request failed");
            e.printStackTrace(System.out);
        }
        System.out.println("2026-12-02 09:00:02 INFO after the trace");
        System.out.flush();
        service();
    }
}
