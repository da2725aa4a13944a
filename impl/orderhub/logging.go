package orderhub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisLogsTo sends go-redis's own messages (a failed dial, a cluster
// reload) to log as WARN lines, instead of its unstructured lines on
// stderr. go-redis keeps one logger per process, not per client: the
// process's owner (the command) calls this once; a library or a test that
// embeds orderhub decides for itself.
func RedisLogsTo(log *slog.Logger) {
	redis.SetLogger(redisLog{log})
}

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

// roundTrips logs each Redis round trip at DEBUG (command names and time,
// never arguments: they hold stored answers), joined to its request by
// xRequestId when the logger is httpapi.RequestLogHandler's. At INFO it
// costs one Enabled call per round trip.
type roundTrips struct{ log *slog.Logger }

func (roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.log.Enabled(ctx, slog.LevelDebug) {
			return next(ctx, cmd)
		}
		start := time.Now()
		err := next(ctx, cmd)
		h.done(ctx, start, cmd.Name(), err)
		return err
	}
}

func (h roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !h.log.Enabled(ctx, slog.LevelDebug) {
			return next(ctx, cmds)
		}
		start := time.Now()
		err := next(ctx, cmds)
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		h.done(ctx, start, strings.Join(names, ","), err)
		return err
	}
}

func (h roundTrips) done(ctx context.Context, start time.Time, cmds string, err error) {
	attrs := []slog.Attr{slog.String("cmds", cmds), slog.Float64("tookMs", float64(time.Since(start).Microseconds())/1000)}
	if err != nil && !errors.Is(err, redis.Nil) {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	h.log.LogAttrs(ctx, slog.LevelDebug, "redis round trip", attrs...)
}
