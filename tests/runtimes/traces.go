// Prints ordinary log lines, then panics while other goroutines are blocked, so the
// runtime dumps several goroutines (GOTRACEBACK=all).
package main

import (
	"fmt"
	"os"
	"sync"
)

type store struct{ items map[string]int }

func (s *store) get(key string) int {
	return s.items[key] / len(s.items)
}

func worker(id int, ready *sync.WaitGroup, block chan struct{}) {
	ready.Done()
	<-block
	fmt.Println("worker", id, "done")
}

func main() {
	fmt.Println("2026/12/02 09:00:00 before the panic")
	var ready sync.WaitGroup
	block := make(chan struct{})
	for i := 0; i < 3; i++ {
		ready.Add(1)
		go worker(i, &ready, block)
	}
	ready.Wait()
	fmt.Fprintln(os.Stdout, "2026/12/02 09:00:01 workers started")
	s := &store{}
	fmt.Println(s.get("x"))
}
