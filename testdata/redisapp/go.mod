module github.com/lazypod/lazypod/testdata/redisapp

go 1.26.0

require github.com/gomodule/redigo v1.9.3
